//! Bad requests get a clear 4xx JSON error and change nothing: a corpus of malformed,
//! truncated, oversized and wrong-typed payloads, wrong and missing tokens, wrong content
//! types. Unknown fields, on the other hand, are accepted (Alertmanager adds them).

mod support;

use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion};
use serde_json::{json, Value};
use support::{captured, Remediator, WEBHOOK_TOKEN};

const RULES: &str = r#"
[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
params = { step = 1.0 }
"#;

fn with(mutate: impl FnOnce(&mut Value)) -> String {
    let mut payload = captured("builder-overloaded-firing.json");
    mutate(&mut payload);
    payload.to_string()
}

fn corpus() -> Vec<(&'static str, String)> {
    let firing = captured("builder-overloaded-firing.json").to_string();
    vec![
        ("empty", String::new()),
        ("not json", "alert!".into()),
        ("open brace", "{".into()),
        ("array", "[]".into()),
        ("null", "null".into()),
        ("empty object", "{}".into()),
        ("truncated", firing[..firing.len() / 2].to_string()),
        ("version 3", with(|p| p["version"] = json!("3"))),
        ("version number", with(|p| p["version"] = json!(4))),
        (
            "no version",
            with(|p| {
                p.as_object_mut().unwrap().remove("version");
            }),
        ),
        (
            "no alerts",
            with(|p| {
                p.as_object_mut().unwrap().remove("alerts");
            }),
        ),
        ("alerts not a list", with(|p| p["alerts"] = json!({"a": 1}))),
        (
            "alert is a string",
            with(|p| p["alerts"] = json!(["firing"])),
        ),
        (
            "no labels",
            with(|p| {
                p["alerts"][0].as_object_mut().unwrap().remove("labels");
            }),
        ),
        (
            "label not a string",
            with(|p| p["alerts"][0]["labels"]["host"] = json!(7)),
        ),
        (
            "no alertname",
            with(|p| {
                p["alerts"][0]["labels"]
                    .as_object_mut()
                    .unwrap()
                    .remove("alertname");
            }),
        ),
        (
            "bad status",
            with(|p| p["alerts"][0]["status"] = json!("exploding")),
        ),
        (
            "bad startsAt",
            with(|p| p["alerts"][0]["startsAt"] = json!("yesterday")),
        ),
        (
            "startsAt number",
            with(|p| p["alerts"][0]["startsAt"] = json!(1764300000)),
        ),
        (
            "no fingerprint",
            with(|p| {
                p["alerts"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("fingerprint");
            }),
        ),
        (
            "empty fingerprint",
            with(|p| p["alerts"][0]["fingerprint"] = json!("")),
        ),
        (
            "huge fingerprint",
            with(|p| p["alerts"][0]["fingerprint"] = json!("f".repeat(500))),
        ),
        (
            "deep nesting",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        ),
    ]
}

async fn hub_capacity(remediator: &Remediator) -> f64 {
    remediator
        .hub
        .client
        .query_one("SELECT capacity FROM host_config WHERE active", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn every_bad_body_is_a_4xx_and_changes_nothing() {
    let remediator = Remediator::start(KojiVersion::V1_33, RULES).await;
    add_host(
        &remediator.hub.client,
        KojiVersion::V1_33,
        &HostSpec::new("buildvm-x86-01.example.org"),
    )
    .await
    .unwrap();
    for (name, body) in corpus() {
        let (status, answer) = remediator.post(&body).await;
        assert_eq!(status, 400, "{name}: {answer}");
        assert!(
            answer["error"].is_string() && answer["detail"].is_string(),
            "{name}: {answer}"
        );
    }
    let (status, answer) = remediator.post(&"x".repeat(70_000)).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"], "payload_too_large");
    let firing = captured("builder-overloaded-firing.json").to_string();
    let (status, answer) = remediator
        .post_with(&firing, Some(WEBHOOK_TOKEN), "text/plain")
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    for token in [
        None,
        Some("wrong-token-wrong-token-wrong"),
        Some(support::API_TOKEN),
        Some(""),
    ] {
        let (status, answer) = remediator
            .post_with(&firing, token, "application/json")
            .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("unauthorized")),
            "{token:?}"
        );
    }
    assert_eq!(
        remediator.journal_counts().await,
        (0, 0, 0),
        "journal unchanged"
    );
    assert_eq!(hub_capacity(&remediator).await, 4.0, "hub unchanged");

    // Unknown fields are fine: the same payload with additions is journaled and acted on.
    let extended = with(|p| {
        p["someNewField"] = json!({"added": "by a later Alertmanager"});
        p["alerts"][0]["silencedBy"] = json!([]);
    });
    let (status, answer) = remediator.post(&extended).await;
    assert_eq!(status, 200, "{answer}");
    remediator.finished_runs(1).await;
    assert_eq!(hub_capacity(&remediator).await, 3.0);

    // The journal API wants on-call's token.
    let response = remediator
        .client
        .get(format!("{}/api/v1/journal", remediator.base))
        .bearer_auth(WEBHOOK_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

#[test]
fn configuration_errors_name_the_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let base = support::config_text(dir.path(), "host=h", "host=j", "");
    let check = |extra: &str, expected: &str| {
        let text = format!("{base}\n{extra}");
        let error = koji_remediator::config::Config::parse(
            &text,
            std::path::Path::new("/etc/koji-remediator.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("/etc/koji-remediator.toml"), "{error}");
        assert!(error.contains(expected), "{expected} not in {error}");
    };
    let rule = |body: &str| {
        format!("[[rule]]\nname = \"r\"\nalertname = \"A\"\npolicy = \"auto\"\n{body}")
    };
    check(&rule("action = \"reboot_everything\""), "reboot_everything");
    check(
        &rule("action = \"lower_capacity\"\ncooldown = \"soonish\""),
        "cooldown",
    );
    check(
        &rule("action = \"lower_capacity\"\nparams = { floor = 1.0 }"),
        "rule[0].params",
    );
    check(
        &rule("action = \"lower_capacity\"\nparams = { stepp = 1.0 }"),
        "stepp",
    );
    check(
        &rule("action = \"lower_capacity\"\nparams = { step = 1.0, to = 3.0 }"),
        "rule[0].params",
    );
    check(
        &rule("action = \"terminate_stale_connections\"\nrestore_on_resolve = true"),
        "rule[0].restore_on_resolve",
    );
    check(
        &rule("action = \"terminate_stale_connections\"\nparams = { max_per_run = 0 }"),
        "rule[0].params",
    );
    check(
        &rule("action = \"lower_capacity\"\npolicy_typo = 1"),
        "policy_typo",
    );
    check("[guardz]\npaused = true", "guardz");
    check(&rule("action = \"escalate\""), "rule[0].policy");
    check(
        &rule("action = \"escalate\"\nparams = { to = 1 }").replace("\"auto\"", "\"notify\""),
        "rule[0].params",
    );
    let zero_sessions = base.replace(
        "max_body_bytes = 65536",
        "max_body_bytes = 65536\nsession_lifetime = \"0s\"",
    );
    let error =
        koji_remediator::config::Config::parse(&zero_sessions, std::path::Path::new("r.toml"))
            .unwrap_err()
            .to_string();
    assert!(error.contains("server.session_lifetime"), "{error}");
    check(
        "[silences]\nalertmanager_urls = []",
        "silences.alertmanager_urls",
    );
    let smtp = "[notify]\ncontact = \"x\"\n[notify.smtp]\nserver = \"mail\"\nfrom = \"a@b.org\"\nto = [\"c@d.org\"]\n";
    check(
        &format!("{smtp}username = \"u\"\npassword_file = \"/p\"\n"),
        "notify.smtp.tls",
    );
    check(
        &format!("{smtp}tls = \"starttls\"\nusername = \"u\"\n"),
        "notify.smtp.password_file",
    );
    check(&format!("{smtp}tls = \"ssl\"\n"), "ssl");
    check(
        "[silences]\nalertmanager_urls = [\"am:9093\"]",
        "silences.alertmanager_urls",
    );
    check(
        "[silences]\nalertmanager_urls = [\"http://am:9093\"]\nduration = \"0s\"",
        "silences.duration",
    );
    check(
        "[silences]\nalertmanager_urls = [\"http://am:9093\"]\nduration = \"1000years\"",
        "silences.duration",
    );
    check(
        "[silences]\nalertmanager_urls = [\"http://am:9093\"]\nmatchers = 1",
        "matchers",
    );
}
