//! The approval page over real HTTP against a real journal and hub database: log-in with a
//! personal on-call token, no state change on GET, every way a forged or incomplete POST is
//! refused (no session, no or wrong form token, another origin, the browser's cross-site
//! marker), then an approval that applies the plan once, a second approval refused, and
//! log-out. The same page in real Chromium is tested in tests/e2e/approval_in_browser.rs.

mod support;

use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use support::{approve_lowering_rules, payload, Remediator, ALICE, API_TOKEN, WEBHOOK_TOKEN};

const HOST: &str = "buildvm-x86-01.example.org";

async fn escalation_state(remediator: &Remediator, id: i64) -> String {
    let list = remediator.escalations().await;
    let entry = list.iter().find(|e| e["id"] == id).expect("listed");
    entry["state"].as_str().unwrap().to_owned()
}

/// The page's client: no redirects followed, so each answer is seen as it is.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn log_in(base: &str, name: &str, token: &str) -> reqwest::Response {
    browser()
        .post(format!("{base}/login"))
        .form(&[("name", name), ("token", token)])
        .send()
        .await
        .unwrap()
}

/// The `name=value` part of the session cookie set by a successful log-in.
fn session_cookie(response: &reqwest::Response) -> String {
    let set = response.headers()[SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    set.split(';').next().unwrap().to_owned()
}

/// The form token in a rendered page.
fn form_token(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a form token in the page") + marker.len();
    page[start..start + 64].to_owned()
}

#[tokio::test]
async fn log_in_refuse_forgeries_approve_once_log_out() {
    let dir = tempfile::tempdir().unwrap();
    let remediator =
        Remediator::start(KojiVersion::V1_33, &approve_lowering_rules(dir.path())).await;
    let base = remediator.base.clone();
    add_host(
        &remediator.hub.client,
        KojiVersion::V1_33,
        &HostSpec::new(HOST),
    )
    .await
    .unwrap();
    remediator
        .post(&payload(
            false,
            &[("alertname", "KojiBuilderOverloaded"), ("host", HOST)],
            "f0f0f0f0f0f0f0f0",
            "2026-11-28T23:00:00Z",
        ))
        .await;

    // Not logged in: the page sends the browser to the log-in form.
    let response = browser()
        .get(format!("{base}/escalations"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/login");

    // Wrong token, unknown name, and tokens that are not alice's own are refused.
    for (name, token) in [
        ("alice", "wrong-token"),
        ("mallory", ALICE),
        ("alice", WEBHOOK_TOKEN),
        ("alice", API_TOKEN),
        ("alice", ""),
    ] {
        let response = log_in(&base, name, token).await;
        assert_eq!(response.status(), 401, "{name}/{token}");
        assert!(response.headers().get(SET_COOKIE).is_none());
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("Unknown name or wrong token"));
    }

    let response = log_in(&base, "alice", ALICE).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/escalations");
    let cookie = session_cookie(&response);

    // The list shows the escalation with its plan, once planned; GET changes nothing.
    let mut page = String::new();
    for _ in 0..200 {
        let response = browser()
            .get(format!("{base}/escalations"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        assert!(response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("form-action 'self'"));
        page = response.text().await.unwrap();
        if page.contains("from 4 to 3") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(page.contains("from 4 to 3"), "{page}");
    assert!(
        page.contains("Logged in as <strong>alice</strong>"),
        "{page}"
    );
    let id_start = page.find("id=\"approve-").unwrap() + "id=\"approve-".len();
    let id: i64 = page[id_start..].split('"').next().unwrap().parse().unwrap();
    let token = form_token(&page);
    assert_eq!(remediator.active_capacity().await, 4.0);

    // Forged or incomplete POSTs: each refused with 403, nothing decided.
    let approve_url = format!("{base}/escalations/{id}/approve");
    let host = base.trim_start_matches("http://").to_owned();
    let forgeries: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "no session",
            browser()
                .post(&approve_url)
                .form(&[("csrf", token.as_str())]),
        ),
        (
            "no form token",
            browser()
                .post(&approve_url)
                .header(COOKIE, &cookie)
                .form(&[("reason", "x")]),
        ),
        (
            "wrong form token",
            browser()
                .post(&approve_url)
                .header(COOKIE, &cookie)
                .form(&[("csrf", "0".repeat(64).as_str())]),
        ),
        (
            "another origin",
            browser()
                .post(&approve_url)
                .header(COOKIE, &cookie)
                .header("origin", "http://evil.example.org")
                .form(&[("csrf", token.as_str())]),
        ),
        (
            "cross-site fetch",
            browser()
                .post(&approve_url)
                .header(COOKIE, &cookie)
                .header("sec-fetch-site", "cross-site")
                .form(&[("csrf", token.as_str())]),
        ),
        (
            "a token of another session",
            browser()
                .post(&approve_url)
                .header(COOKIE, "koji_remediator_session=feedface")
                .form(&[("csrf", token.as_str())]),
        ),
    ];
    for (what, request) in forgeries {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{what}");
        assert!(response.text().await.unwrap().contains("Refused"), "{what}");
    }
    assert_eq!(escalation_state(&remediator, id).await, "awaiting_approval");
    assert_eq!(remediator.active_capacity().await, 4.0);

    // The real form: same origin, session and token. Applied once.
    let response = browser()
        .post(&approve_url)
        .header(COOKIE, &cookie)
        .header("origin", format!("http://{host}"))
        .form(&[("csrf", token.as_str()), ("reason", "plague is loading it")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()[LOCATION],
        format!("/escalations?decided={id}&state=approved").as_str()
    );
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert_eq!(remediator.active_capacity().await, 3.0);
    let list = remediator.escalations().await;
    let entry = list.iter().find(|e| e["id"] == id).unwrap();
    assert_eq!(
        (entry["decided_by"].as_str(), entry["reason"].as_str()),
        (Some("alice"), Some("plague is loading it"))
    );

    // A second approval of the same escalation is refused and applies nothing.
    let response = browser()
        .post(&approve_url)
        .header(COOKIE, &cookie)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("is not waiting for a decision"));
    assert_eq!(remediator.active_capacity().await, 3.0);

    // Log-out ends the session: the cookie no longer opens the page.
    let response = browser()
        .post(format!("{base}/logout"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let response = browser()
        .get(format!("{base}/escalations"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/login");
}

/// The page's simulate form: a pasted payload is decided and planned as now, shown as a
/// page; posted like a decision (a form without the session's token is refused); nothing is
/// journaled or applied.
#[tokio::test]
async fn the_simulate_form_says_what_an_alert_would_do() {
    let dir = tempfile::tempdir().unwrap();
    let remediator =
        Remediator::start(KojiVersion::V1_33, &approve_lowering_rules(dir.path())).await;
    let base = remediator.base.clone();
    let mut host = HostSpec::new(HOST);
    host.capacity = 4.0;
    add_host(&remediator.hub.client, KojiVersion::V1_33, &host)
        .await
        .unwrap();
    let cookie = session_cookie(&log_in(&base, "alice", ALICE).await);
    let page = browser()
        .get(format!("{base}/escalations"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"simulate\""), "{page}");
    let csrf = form_token(&page);
    let alert = payload(
        false,
        &[("alertname", "KojiBuilderOverloaded"), ("host", HOST)],
        "9a0b9a0b9a0b9a0b",
        "2026-11-30T12:00:00Z",
    );
    let before = remediator.journal_counts().await;
    let refused = browser()
        .post(format!("{base}/simulate"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", "wrong"), ("payload", alert.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let answer = browser()
        .post(format!("{base}/simulate"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str()), ("payload", alert.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let shown = answer.text().await.unwrap();
    assert!(
        shown.contains("plan, and wait for on-call&#x27;s approval")
            && shown.contains(&format!("set capacity of Koji host {HOST} from 4 to 3")),
        "{shown}"
    );
    assert_eq!(
        remediator.journal_counts().await,
        before,
        "nothing journaled"
    );
    assert_eq!(remediator.active_capacity_of(HOST).await, 4.0);
}
