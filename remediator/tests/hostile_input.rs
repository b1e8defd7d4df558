//! Input at the edge of the webhook: a body with one invalid UTF-8 byte inside a field the
//! remediator ignores is refused whole and acts on nothing; NUL characters (JSON allows
//! them, PostgreSQL cannot store them) in a label, an annotation or the alert name are
//! replaced and noted, and the valid alert grouped with them is acted on; media types and
//! the bearer scheme are case-insensitive, and only `application/json` is JSON; early
//! errors reach HTTP/2 clients as statuses; oversized header fields get a JSON 431.

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

/// An error answered before the body was read (401, 415, 413) reaches an HTTP/2 client as
/// its status, every time: the server reads (a bounded amount of) the body it refuses, so
/// the stream ends cleanly instead of being reset under the client's upload (curl would
/// report "Stream error in the HTTP/2 framing layer").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_errors_reach_http2_clients_as_statuses() {
    let remediator = started().await;
    let dir = tempfile::tempdir().unwrap();
    let fits = dir.path().join("fits.json");
    std::fs::write(&fits, vec![b' '; 60_000]).unwrap();
    let too_large = dir.path().join("too-large.json");
    std::fs::write(&too_large, vec![b' '; 200_000]).unwrap();
    let url = format!("{}/webhook/alertmanager", remediator.base);
    let bearer = format!("Authorization: Bearer {WEBHOOK_TOKEN}");
    let cases: [(&str, &str, &std::path::Path, &str); 3] = [
        (
            "401",
            "Authorization: Bearer wrong-token-0123456789",
            &fits,
            "application/json",
        ),
        ("415", &bearer, &fits, "text/plain"),
        ("413", &bearer, &too_large, "application/json"),
    ];
    for round in 0..15 {
        for (expected, authorization, body, content_type) in cases {
            let output = tokio::process::Command::new("curl")
                .args(["-sS", "--http2-prior-knowledge", "-o", "/dev/null"])
                .args(["-w", "%{http_code} %{http_version}"])
                .args(["-H", authorization])
                .args(["-H", &format!("Content-Type: {content_type}")])
                .arg("--data-binary")
                .arg(format!("@{}", body.display()))
                .arg(&url)
                .output()
                .await
                .unwrap();
            let said = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success() && said == format!("{expected} 2"),
                "round {round}, expected {expected} over HTTP/2: curl {} said {said:?}, {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

/// Header fields beyond the limit (8 KiB, 100 fields) are answered 431 with the JSON error
/// shape over HTTP/1.1 and HTTP/2, not hyper's bare 431 or a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_header_bytes_or_fields_get_a_431_that_says_so() {
    let remediator = started().await;
    let url = format!("{}/webhook/alertmanager", remediator.base);
    let long = format!("X-Padding: {}", "a".repeat(9 * 1024));
    let many: Vec<String> = (0..120).map(|n| format!("X-Field-{n}: {n}")).collect();
    let cases: [(&str, Vec<String>); 2] = [("bytes", vec![long]), ("fields", many)];
    for (what, headers) in &cases {
        for http in ["--http1.1", "--http2-prior-knowledge"] {
            let mut command = tokio::process::Command::new("curl");
            command
                .args(["-sS", http, "-w", "\n%{http_code}"])
                .args(["-H", &format!("Authorization: Bearer {WEBHOOK_TOKEN}")])
                .args([
                    "-H",
                    "Content-Type: application/json",
                    "--data-binary",
                    "{}",
                ]);
            for header in headers {
                command.args(["-H", header]);
            }
            let output = command.arg(&url).output().await.unwrap();
            let said = String::from_utf8_lossy(&output.stdout);
            let (body, status) = said.rsplit_once('\n').unwrap();
            assert_eq!(status, "431", "too many {what} over {http}: {said}");
            let body: Value = serde_json::from_str(body).expect(body);
            assert_eq!(body["error"], "request_header_fields_too_large", "{body}");
            assert!(
                body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("limited to 100 fields and 8192 bytes"),
                "{body}"
            );
        }
    }
    // Within the limits, the same request is answered normally.
    let (status, answer) = send(
        &remediator,
        captured("builder-overloaded-firing.json")
            .to_string()
            .into_bytes(),
        "application/json",
        &format!("Bearer {WEBHOOK_TOKEN}"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}
