//! The approval page: on-call logs in with their `[[oncall]]` name and personal token, sees
//! pending and recent escalations with their plans, the changes held until it is safe to undo
//! them, approves or rejects, and asks what an alert would do now ([`simulate_form`]). Plain
//! server-rendered HTML forms (minijinja templates compiled into the binary), usable without
//! JavaScript. GET never changes anything; every POST must come from this site, carry the
//! session cookie and the session's form token (see [`cross_site`]). Decisions go through
//! the same code as the JSON API, so the journal records the person either way.

pub mod cross_site;
pub mod sessions;
pub mod simulate_form;

use std::sync::LazyLock;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::{context, Environment};
use serde::Deserialize;
use serde_json::Value;

use super::escalations_api::decide_escalation;
use super::state::AppState;
use crate::lifecycle::{RunState, Verdict};
use sessions::{cookie_value, Session};

/// Longest reason accepted with a decision.
const MAX_REASON: usize = 500;

/// The templates, parsed once. Names end in `.html`, so minijinja escapes every value.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../../../templates/base.html")),
        ("login.html", include_str!("../../../templates/login.html")),
        (
            "message.html",
            include_str!("../../../templates/message.html"),
        ),
        (
            "escalations.html",
            include_str!("../../../templates/escalations.html"),
        ),
        (
            "simulate.html",
            include_str!("../../../templates/simulate.html"),
        ),
    ] {
        env.add_template(name, source)
            .expect("the compiled-in templates parse (tested)");
    }
    env
});

/// The page's routes, merged into the central router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/escalations") }))
        .route("/login", get(login_form).post(log_in))
        .route("/logout", post(log_out))
        .route("/escalations", get(list))
        .route("/escalations/{id}/approve", post(approve))
        .route("/escalations/{id}/reject", post(reject))
        .route("/simulate", post(simulate_form::simulate))
}

/// Renders a template with the headers every page carries: no caching, no framing, no
/// scripts, forms only to this server. The referrer policy is `same-origin`, not
/// `no-referrer`: under `no-referrer` browsers send `Origin: null` with the page's own
/// forms, which the cross-site check must refuse.
fn render(status: StatusCode, template: &str, ctx: minijinja::Value) -> Response {
    let body = match TEMPLATES.get_template(template).and_then(|t| t.render(ctx)) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, template, "cannot render a page");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A page with only a message, for refusals and errors.
fn message(status: StatusCode, text: &str, session: Option<&Session>) -> Response {
    render(
        status,
        "message.html",
        context! {
            message => text,
            error => !status.is_success(),
            person => session.map(|s| s.person.as_str()),
            csrf => session.map(|s| s.csrf.as_str()),
        },
    )
}

/// The session the request's cookie names, with the cookie's value.
fn current_session(headers: &HeaderMap, state: &AppState) -> Option<(String, Session)> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let id = cookie_value(cookies)?;
    state.sessions.get(id).map(|s| (id.to_owned(), s))
}

/// Checks a state-changing request: from this site, logged in, with the session's form
/// token. The refusal is the response to send.
fn authorize_post(
    headers: &HeaderMap,
    state: &AppState,
    csrf: &str,
) -> Result<(String, Session), Box<Response>> {
    if let Err(cross) = cross_site::check(headers) {
        tracing::warn!(%cross, "refused a cross-site request to the approval page");
        return Err(Box::new(message(
            StatusCode::FORBIDDEN,
            &format!("Refused: {cross}."),
            None,
        )));
    }
    let Some((id, session)) = current_session(headers, state) else {
        return Err(Box::new(message(
            StatusCode::FORBIDDEN,
            "Refused: log in first (no session, or it expired).",
            None,
        )));
    };
    if !constant_time_eq::constant_time_eq(csrf.as_bytes(), session.csrf.as_bytes()) {
        tracing::warn!(person = %session.person, "refused a form without the session's token");
        return Err(Box::new(message(
            StatusCode::FORBIDDEN,
            "Refused: the form's token does not match your session. Reload the page and try again.",
            Some(&session),
        )));
    }
    Ok((id, session))
}

async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if current_session(&headers, &state).is_some() {
        return Redirect::to("/escalations").into_response();
    }
    render(StatusCode::OK, "login.html", context! {})
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    token: String,
}

async fn log_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(cross) = cross_site::check(&headers) {
        tracing::warn!(%cross, "refused a cross-site log-in");
        return message(StatusCode::FORBIDDEN, &format!("Refused: {cross}."), None);
    }
    let known = state.oncall.iter().any(|(name, token)| {
        // Both compared, always, so timing tells nothing about which one was wrong.
        let name_ok = constant_time_eq::constant_time_eq(name.as_bytes(), form.name.as_bytes());
        let token_ok =
            constant_time_eq::constant_time_eq(token.current().as_bytes(), form.token.as_bytes());
        name_ok & token_ok & !form.token.is_empty()
    });
    if !known {
        tracing::warn!(name = %form.name, "approval page log-in refused");
        return render(
            StatusCode::UNAUTHORIZED,
            "login.html",
            context! { message => "Unknown name or wrong token.", error => true },
        );
    }
    let id = state.sessions.start(&form.name);
    tracing::info!(person = %form.name, "logged in to the approval page");
    let cookie = state.sessions.cookie(&id);
    let mut response = Redirect::to("/escalations").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("hex and ASCII only"),
    );
    response
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    csrf: String,
}

async fn log_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let (id, _) = match authorize_post(&headers, &state, &form.csrf) {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    state.sessions.end(&id);
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&state.sessions.cookie("")).expect("ASCII only"),
    );
    response
}

/// After a decision the browser is sent back to the list, which says what happened.
#[derive(Deserialize)]
struct DecidedQuery {
    decided: Option<i64>,
    state: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<DecidedQuery>,
) -> Response {
    let Some((_, session)) = current_session(&headers, &state) else {
        return Redirect::to("/login").into_response();
    };
    let read = async {
        Ok::<_, crate::journal::JournalError>((
            state.journal.escalations(200).await?,
            state.journal.held_changes().await?,
        ))
    };
    let (escalations, held) = match read.await {
        Ok(read) => read,
        Err(error) => {
            tracing::error!(%error, "cannot read the journal for the approval page");
            return message(
                StatusCode::SERVICE_UNAVAILABLE,
                "The journal cannot be read right now; try again shortly.",
                Some(&session),
            );
        }
    };
    let (pending, recent): (Vec<Value>, Vec<Value>) = escalations
        .into_iter()
        .map(|escalation| for_display(escalation, state.config.server.dashboard_url.as_deref()))
        .partition(|e| e["state"] == RunState::AwaitingApproval.name());
    let verdict = query.state.as_deref().and_then(|s| s.parse().ok());
    let flash = match (query.decided, verdict) {
        (Some(id), Some(Verdict::Approved)) => Some(format!(
            "Escalation {id} approved: its plan is being applied."
        )),
        (Some(id), Some(Verdict::Rejected)) => Some(format!("Escalation {id} rejected.")),
        _ => None,
    };
    render(
        StatusCode::OK,
        "escalations.html",
        context! {
            pending => minijinja::value::Serde(&pending),
            recent => minijinja::value::Serde(&recent),
            held => minijinja::value::Serde(&held),
            person => session.person,
            csrf => session.csrf,
            message => flash,
        },
    )
}

/// Readable at a glance: timestamps also relative ("12 min ago"), the Koji host the alert
/// is about, the alert's graph only as an http(s) link, the host's dashboard (`dashboard`:
/// `{host}` in the configured URL replaced), and the full plan as indented JSON.
fn for_display(mut escalation: Value, dashboard: Option<&str>) -> Value {
    let now = chrono::Utc::now();
    for key in ["created_at", "decided_at", "finished_at"] {
        if let Some(text) = escalation[key].as_str() {
            if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
                let utc = time.with_timezone(&chrono::Utc);
                escalation[format!("{key}_ago")] = Value::from(ago(now - utc));
                escalation[key] = Value::from(utc.format("%Y-%m-%d %H:%M:%S UTC").to_string());
            }
        }
    }
    escalation["host"] = escalation["labels"]["host"].clone();
    if let (Some(template), Some(host)) = (dashboard, escalation["host"].as_str()) {
        let host: String =
            percent_encoding::utf8_percent_encode(host, percent_encoding::NON_ALPHANUMERIC)
                .collect();
        escalation["dashboard"] = Value::from(template.replace("{host}", &host));
    }
    let graph = escalation["generator_url"].as_str().unwrap_or("");
    if !(graph.starts_with("https://") || graph.starts_with("http://")) {
        escalation["generator_url"] = Value::Null;
    }
    if !escalation["plan_detail"].is_null() {
        let pretty = serde_json::to_string_pretty(&escalation["plan_detail"]).unwrap_or_default();
        escalation["plan_detail"] = Value::from(pretty);
    }
    escalation
}

/// How long ago, in words a person reads at a glance.
fn ago(elapsed: chrono::Duration) -> String {
    let seconds = elapsed.num_seconds().max(0);
    match seconds {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..86400 => format!("{} h {} min ago", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{} days ago", seconds / 86400),
    }
}

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<DecisionForm>,
) -> Response {
    decide(state, headers, id, form, true).await
}

async fn reject(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<DecisionForm>,
) -> Response {
    decide(state, headers, id, form, false).await
}

async fn decide(
    state: AppState,
    headers: HeaderMap,
    id: i64,
    form: DecisionForm,
    approve: bool,
) -> Response {
    let (_, session) = match authorize_post(&headers, &state, &form.csrf) {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    if form.reason.chars().count() > MAX_REASON {
        return message(
            StatusCode::BAD_REQUEST,
            &format!("The reason is limited to {MAX_REASON} characters."),
            Some(&session),
        );
    }
    match decide_escalation(&state, id, &session.person, form.reason.trim(), approve).await {
        Ok(decided) => Redirect::to(&format!(
            "/escalations?decided={id}&state={}",
            decided.name()
        ))
        .into_response(),
        Err(error) => message(error.status(), error.detail(), Some(&session)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_parse_and_escape() {
        let page = TEMPLATES
            .get_template("message.html")
            .unwrap()
            .render(context! { message => "<script>alert(1)</script>", error => true })
            .unwrap();
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{page}"
        );
        assert!(!page.contains("<script>"));
        for name in ["login.html", "escalations.html"] {
            TEMPLATES.get_template(name).unwrap();
        }
    }

    #[test]
    fn hostile_label_values_are_shown_as_text() {
        let hostile = "<img src=x onerror=alert(1)>";
        let escalation = serde_json::json!({
            "id": 7, "alertname": hostile, "target": hostile, "rule": "r", "action": "a",
            "state": "awaiting_approval", "plan": hostile, "plan_detail": hostile,
        });
        let page = TEMPLATES
            .get_template("escalations.html")
            .unwrap()
            .render(context! {
                pending => minijinja::value::Serde(&[escalation]),
                recent => minijinja::value::Serde(&Vec::<Value>::new()),
                person => "alice", csrf => "t",
            })
            .unwrap();
        assert!(!page.contains("<img"), "{page}");
        assert!(
            page.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{page}"
        );
        assert!(page.contains("id=\"approve-7\""), "{page}");
    }

    #[test]
    fn elapsed_times_read_at_a_glance() {
        let ago = |seconds| ago(chrono::Duration::seconds(seconds));
        assert_eq!(ago(5), "just now");
        assert_eq!(ago(12 * 60 + 30), "12 min ago");
        assert_eq!(ago(3 * 3600 + 5 * 60), "3 h 5 min ago");
        assert_eq!(ago(2 * 86400 + 10), "2 days ago");
    }

    #[test]
    fn only_http_graph_links_and_the_koji_host_are_shown() {
        let shown = for_display(
            serde_json::json!({
                "labels": {"host": "buildvm-x86-01.example.org&x=<y>", "instance": "b:9866"},
                "generator_url": "javascript:alert(1)",
            }),
            Some("https://grafana.example.org/d/koji-builders?var-host={host}"),
        );
        assert_eq!(shown["host"], "buildvm-x86-01.example.org&x=<y>");
        assert!(shown["generator_url"].is_null());
        assert_eq!(
            shown["dashboard"],
            "https://grafana.example.org/d/koji-builders?var-host=buildvm%2Dx86%2D01%2Eexample%2Eorg%26x%3D%3Cy%3E"
        );
        let shown = for_display(
            serde_json::json!({
                "generator_url": "https://prometheus.example.org/graph?g0.expr=up",
            }),
            None,
        );
        assert!(shown["dashboard"].is_null());
        assert_eq!(
            shown["generator_url"],
            "https://prometheus.example.org/graph?g0.expr=up"
        );
    }

    #[test]
    fn timestamps_and_plans_are_made_readable() {
        let shown = for_display(
            serde_json::json!({
                "created_at": "2026-11-28T07:40:01.123456+00:00",
                "decided_at": null,
                "plan_detail": {"action": "x", "paths": ["/a"]},
            }),
            None,
        );
        assert_eq!(shown["created_at"], "2026-11-28 07:40:01 UTC");
        assert!(shown["created_at_ago"].as_str().unwrap().ends_with(" ago"));
        assert!(shown["decided_at"].is_null());
        assert_eq!(
            shown["plan_detail"],
            "{\n  \"action\": \"x\",\n  \"paths\": [\n    \"/a\"\n  ]\n}"
        );
    }
}
