//! Input at the edge of the webhook: a body with one invalid UTF-8 byte inside a field the
//! remediator ignores is refused whole and acts on nothing; NUL characters (JSON allows
//! them, PostgreSQL cannot store them) in a label, an annotation or the alert name are
//! replaced and noted, and the valid alert grouped with them is acted on; media types and
//! the bearer scheme are case-insensitive, and only `application/json` is JSON.

mod support;

use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion};
use serde_json::{json, Value};
use support::{captured, Remediator, HOST, WEBHOOK_TOKEN};

const RULES: &str = r#"
[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
params = { step = 1.0 }
"#;

async fn send(
    remediator: &Remediator,
    body: Vec<u8>,
    content_type: &str,
    authorization: &str,
) -> (u16, Value) {
    let response = remediator
        .client
        .post(format!("{}/webhook/alertmanager", remediator.base))
        .header("Content-Type", content_type)
        .header("Authorization", authorization)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn started() -> Remediator {
    let remediator = Remediator::start(KojiVersion::V1_33, RULES).await;
    for host in [HOST, "buildvm-x86-02.example.org"] {
        add_host(
            &remediator.hub.client,
            KojiVersion::V1_33,
            &HostSpec::new(host),
        )
        .await
        .unwrap();
    }
    remediator
}

#[tokio::test]
async fn a_broken_byte_anywhere_refuses_the_whole_body() {
    let remediator = started().await;
    let bearer = format!("Bearer {WEBHOOK_TOKEN}");
    for field in [
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "groupKey",
    ] {
        let mut payload = captured("builder-overloaded-firing.json");
        payload[field] = json!("MARKER");
        let text = payload.to_string();
        // One byte that is not UTF-8 where the marker was.
        let mut body = text.replace("MARKER", "broken-\u{1}-byte").into_bytes();
        let at = body.iter().position(|b| *b == 1).unwrap();
        body[at] = 0xff;
        let (status, answer) = send(&remediator, body, "application/json", &bearer).await;
        assert_eq!(status, 400, "{field}: {answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains("not UTF-8"),
            "{field}: {answer}"
        );
    }
    assert_eq!(
        remediator.journal_counts().await,
        (0, 0, 0),
        "nothing journaled"
    );
    assert_eq!(
        remediator.active_capacity_of(HOST).await,
        4.0,
        "nothing acted on"
    );
}

#[tokio::test]
async fn nul_is_replaced_and_noted_and_the_valid_sibling_acts() {
    let remediator = started().await;
    let mut payload = captured("builder-overloaded-firing.json");
    let valid = payload["alerts"][0].clone();
    let mut hostile = valid.clone();
    hostile["labels"]["host"] = json!("buildvm-x86-02.example.org\u{0}");
    hostile["labels"]["alertname"] = json!("KojiBuilderOverloaded\u{0}");
    hostile["annotations"]["summary"] = json!("over\u{0}loaded");
    hostile["fingerprint"] = json!("0000111122223333");
    payload["alerts"] = json!([hostile, valid]);
    let (status, answer) = send(
        &remediator,
        payload.to_string().into_bytes(),
        "application/json",
        &format!("Bearer {WEBHOOK_TOKEN}"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["runs_claimed"], 1, "{answer}");
    remediator.finished_runs(1).await;
    assert_eq!(
        remediator.active_capacity_of(HOST).await,
        3.0,
        "the valid alert acted"
    );
    assert_eq!(
        remediator
            .active_capacity_of("buildvm-x86-02.example.org")
            .await,
        4.0
    );
    let decisions = remediator.alert_decisions().await;
    let noted = decisions
        .iter()
        .find(|d| d["fingerprint"] == "0000111122223333")
        .expect("the hostile alert is journaled");
    assert_eq!(noted["decision"], "unmatched", "{noted:#}");
    assert_eq!(noted["alertname"], "KojiBuilderOverloaded\u{fffd}");
    let detail = noted["detail"].as_str().unwrap();
    assert!(
        detail.contains("replaced with U+FFFD in: label alertname, label host, annotation summary"),
        "{detail}"
    );
}

#[tokio::test]
async fn media_types_and_the_bearer_scheme_are_case_insensitive() {
    let remediator = started().await;
    let body = || {
        captured("builder-overloaded-firing.json")
            .to_string()
            .into_bytes()
    };
    let bearer = format!("Bearer {WEBHOOK_TOKEN}");
    let (status, answer) = send(&remediator, body(), "application/jsonx", &bearer).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let (status, answer) = send(
        &remediator,
        body(),
        "APPLICATION/JSON; charset=UTF-8",
        &bearer,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = send(
        &remediator,
        body(),
        "application/json",
        &format!("bearer {WEBHOOK_TOKEN}"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, _) = send(
        &remediator,
        body(),
        "application/json",
        &format!("Basic {WEBHOOK_TOKEN}"),
    )
    .await;
    assert_eq!(status, 401);
}
