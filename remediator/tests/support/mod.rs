//! A real koji-remediator for tests: a Koji-shaped hub database, a journal database, token
//! files, the server on a free port, and helpers to post Alertmanager payloads (made from
//! the captured real ones) and read the journal.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use koji_remediator::config::Config;
use koji_testkit::mounts::run;
use koji_testkit::{KojiVersion, TestDb};
use serde_json::Value;

pub const WEBHOOK_TOKEN: &str = "webhook-token-for-tests-0123456789";
pub const API_TOKEN: &str = "api-token-for-tests-9876543210abcdef";
/// The token between central instances and agents.
pub const FORWARD_TOKEN: &str = "forwarding-token-for-tests-abcdef";
/// The builder agents in tests run on.
pub const HOST: &str = "buildvm-x86-01.example.org";

/// A running remediator.
pub struct Remediator {
    pub base: String,
    pub hub: TestDb,
    pub journal_url: String,
    journal_db: Option<TestDb>,
    pub client: reqwest::Client,
    pub config: Config,
    _dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Remediator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The configuration text for a hub and journal, with `rules` appended.
pub fn config_text(dir: &Path, hub_url: &str, journal_url: &str, rules: &str) -> String {
    std::fs::write(dir.join("webhook.token"), WEBHOOK_TOKEN).unwrap();
    std::fs::write(dir.join("api.token"), API_TOKEN).unwrap();
    format!(
        r#"
[server]
webhook_token_file = "{dir}/webhook.token"
api_token_file = "{dir}/api.token"
max_body_bytes = 65536

[journal]
url = "{journal_url}"

[hub]
url = "{hub_url}"
koji_user = "koji-remediator"

[guards]
max_concurrent_per_action = 2
default_cooldown = "10m"
run_lease = "3s"
reconcile_interval = "200ms"

{rules}
"#,
        dir = dir.display()
    )
}

impl Remediator {
    /// Starts on a fresh hub of `version` (with the Koji user `koji-remediator`) and a fresh
    /// journal database.
    pub async fn start(version: KojiVersion, rules: &str) -> Remediator {
        let hub = TestDb::koji("rem_hub", version).await.unwrap();
        koji_testkit::populate::ensure_remediator_user(&hub.client)
            .await
            .unwrap();
        let journal = TestDb::empty("rem_journal").await.unwrap();
        let journal_url = journal.url.clone();
        let hub_url = hub.url.clone();
        let mut remediator = Remediator::start_on(hub, &hub_url, journal_url, rules).await;
        remediator.journal_db = Some(journal);
        remediator
    }

    /// Starts against given databases.
    pub async fn start_on(
        hub: TestDb,
        hub_url: &str,
        journal_url: String,
        rules: &str,
    ) -> Remediator {
        // The remediator's Koji user, as README's setup makes it.
        koji_testkit::populate::ensure_remediator_user(&hub.client)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(dir.path(), hub_url, &journal_url, rules);
        Remediator::start_from_text(hub, journal_url, dir, &text).await
    }

    /// Starts from a whole configuration text (made with [`config_text`] in `dir`, then
    /// adjusted), against given databases.
    pub async fn start_from_text(
        hub: TestDb,
        journal_url: String,
        dir: tempfile::TempDir,
        text: &str,
    ) -> Remediator {
        let config = Config::parse(text, Path::new("test.toml")).expect("test config");
        let state = koji_remediator::start(config.clone())
            .await
            .expect("remediator starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            koji_remediator::http::run(
                listener,
                state,
                koji_tls::Transport::Plain,
                std::future::pending(),
            )
            .await
            .unwrap();
        });
        Remediator {
            base,
            hub,
            journal_url,
            journal_db: None,
            client: reqwest::Client::new(),
            config,
            _dir: dir,
            server,
        }
    }

    /// Stops serving abruptly (as `kill -9` would, nothing is drained) and starts a new
    /// instance on the same databases and configuration.
    pub async fn restart(&mut self) {
        self.server.abort();
        let app = koji_remediator::start(self.config.clone())
            .await
            .expect("restart");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.base = format!("http://{}", listener.local_addr().unwrap());
        self.server = tokio::spawn(async move {
            koji_remediator::http::run(
                listener,
                app,
                koji_tls::Transport::Plain,
                std::future::pending(),
            )
            .await
            .unwrap();
        });
    }

    /// Posts a body to the webhook with the right token.
    pub async fn post(&self, body: &str) -> (u16, Value) {
        self.post_with(body, Some(WEBHOOK_TOKEN), "application/json")
            .await
    }

    /// Posts with a chosen token and content type.
    pub async fn post_with(
        &self,
        body: &str,
        token: Option<&str>,
        content_type: &str,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/webhook/alertmanager", self.base))
            .header("Content-Type", content_type)
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let json = response.json().await.unwrap_or(Value::Null);
        (status, json)
    }

    /// The journal API's runs, newest first.
    pub async fn runs(&self) -> Vec<Value> {
        self.api_list("/api/v1/journal?limit=1000").await
    }

    /// The escalations API's list (waiting ones first).
    pub async fn escalations(&self) -> Vec<Value> {
        self.api_list("/api/v1/escalations").await
    }

    /// The journal API's alert decisions, newest first.
    pub async fn alert_decisions(&self) -> Vec<Value> {
        self.api_list("/api/v1/journal/alerts?limit=1000").await
    }

    /// A list from the on-call API, which must answer 200.
    async fn api_list(&self, path: &str) -> Vec<Value> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        response.json::<Vec<Value>>().await.unwrap()
    }

    /// The capacity of the only active host in the hub (Koji 1.16+ layout).
    pub async fn active_capacity(&self) -> f64 {
        self.hub
            .client
            .query_one("SELECT capacity FROM host_config WHERE active", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// The capacity of the Koji host `host` (1.16+ layout).
    pub async fn active_capacity_of(&self, host: &str) -> f64 {
        self.hub
            .client
            .query_one(
                "SELECT hc.capacity FROM host_config hc JOIN host h ON h.id = hc.host_id
                  WHERE hc.active AND h.name = $1",
                &[&host],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// An administrator (`kojiadmin`, given `admin`) changes `host`'s capacity from `from`
    /// to `to` as Koji's editHost would, behind the remediator's back.
    pub async fn set_capacity_as_admin(&self, host: &str, from: f64, to: f64) {
        koji_testkit::populate::grant_permission(&self.hub.client, "kojiadmin", "admin")
            .await
            .unwrap();
        let mut admin = koji_testkit::test_db::connect(&self.hub.url).await.unwrap();
        let layout = koji_db::detect_layout(&admin).await.unwrap();
        koji_db::capacity::change_capacity(&mut admin, layout, host, from, to, "kojiadmin")
            .await
            .unwrap();
    }

    /// Waits until `count` runs exist and none is pending or running.
    pub async fn finished_runs(&self, count: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let runs = self.runs().await;
            let done = runs.iter().all(|run| {
                !matches!(
                    run["state"].as_str(),
                    Some("pending" | "running" | "applying")
                )
            });
            if runs.len() >= count && done {
                return runs;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "runs not finished: {runs:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Row counts of the journal tables (deliveries, alerts, action runs).
    pub async fn journal_counts(&self) -> (i64, i64, i64) {
        let client = koji_testkit::test_db::connect(&self.journal_url)
            .await
            .unwrap();
        let count = |table: &'static str| {
            let client = &client;
            async move {
                client
                    .query_one(
                        &format!("SELECT count(*) FROM koji_remediator.{table}"),
                        &[],
                    )
                    .await
                    .unwrap()
                    .get::<_, i64>(0)
            }
        };
        (
            count("deliveries").await,
            count("alerts").await,
            count("action_runs").await,
        )
    }
}

/// On-call person alice's own token, in [`approve_lowering_rules`].
pub const ALICE: &str = "alice-oncall-token-0123456789abcdef";

/// On-call alice (token file written to `dir`) and a rule that lowers an overloaded
/// builder's capacity only after approval (step 1, floor 2).
pub fn approve_lowering_rules(dir: &Path) -> String {
    std::fs::write(dir.join("alice.token"), ALICE).unwrap();
    format!(
        r#"
[[oncall]]
name = "alice"
token_file = "{}"

[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "approve"
cooldown = "0s"
params = {{ step = 1.0, floor = 2.0 }}
"#,
        dir.join("alice.token").display()
    )
}

/// A captured Alertmanager payload from `tests/fixtures/alertmanager/`.
pub fn captured(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/alertmanager")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The captured firing (or resolved) payload with its one alert's labels replaced, and a
/// fingerprint and start of our choosing.
pub fn payload(
    resolved: bool,
    labels: &[(&str, &str)],
    fingerprint: &str,
    starts_at: &str,
) -> String {
    let mut payload = captured(if resolved {
        "builder-overloaded-resolved.json"
    } else {
        "builder-overloaded-firing.json"
    });
    let alert = &mut payload["alerts"][0];
    let map: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    alert["labels"] = Value::Object(map.clone());
    alert["fingerprint"] = Value::String(fingerprint.into());
    alert["startsAt"] = Value::String(starts_at.into());
    payload["commonLabels"] = Value::Object(map);
    payload.to_string()
}

/// Starts an agent-only instance for [`HOST`] (no journal, no hub, no runbook) with the
/// cleanup policy `policy` (TOML lines of `[agent.clean_build_dirs]`), on TLS when
/// `web_config` is given; returns its base URL.
pub async fn start_agent(dir: &Path, web_config: Option<&Path>, policy: &str) -> String {
    std::fs::write(dir.join("agent.token"), FORWARD_TOKEN).unwrap();
    let text = format!(
        "[agent]\ntoken_file = \"{}\"\nactions = [\"clean_build_dirs\"]\nhost_name = \"{HOST}\"\nstate_dir = \"{}\"\n\n[agent.clean_build_dirs]\n{policy}\n",
        dir.join("agent.token").display(),
        dir.join("agent-state").display()
    );
    let config = Config::parse(&text, Path::new("agent.toml")).expect("agent config");
    let app = koji_remediator::start(config).await.expect("agent starts");
    assert!(app.central.is_none() && app.agent.is_some());
    let transport = koji_tls::Transport::from_web_config(web_config).expect("web config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!(
        "{}://localhost:{}",
        transport.scheme(),
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        koji_remediator::http::run(listener, app, transport, std::future::pending())
            .await
            .unwrap();
    });
    base
}

/// Service scripts on the "builder": kojid runs; stop and start are recorded. Returns the
/// policy lines that use them.
pub fn service_scripts(dir: &Path) -> String {
    let state = dir.join("svc-state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("kojid"), "").unwrap();
    let log = dir.join("svc-calls.log");
    for (name, body) in [
        ("is-active", format!("test -e {}/\"$1\"", state.display())),
        (
            "stop",
            format!(
                "echo \"stop $1\" >> {}; rm -f {}/\"$1\"",
                log.display(),
                state.display()
            ),
        ),
        (
            "start",
            format!(
                "echo \"start $1\" >> {}; touch {}/\"$1\"",
                log.display(),
                state.display()
            ),
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        run(&["chmod", "+x", path.to_str().unwrap()]);
    }
    let d = dir.display();
    format!(
        "is_active_command = [\"{d}/is-active\"]\nstop_command = [\"{d}/stop\"]\nstart_command = [\"{d}/start\"]\n"
    )
}

/// The token of an instance's own `[agent]` in [`local_agent`].
pub const LOCAL_AGENT_TOKEN: &str = "local-agent-token-for-tests-0123456789";

/// An `[agent]` for [`HOST`] with the cleanup policy `policy` (TOML lines of
/// `[agent.clean_build_dirs]`), its token and state directory in `dir`: appended to a
/// central configuration, the instance runs `clean_build_dirs` itself, under that policy.
pub fn local_agent(dir: &Path, policy: &str) -> String {
    std::fs::write(dir.join("local-agent.token"), LOCAL_AGENT_TOKEN).unwrap();
    format!(
        "\n[agent]\ntoken_file = \"{}\"\nactions = [\"clean_build_dirs\"]\nhost_name = \"{HOST}\"\nstate_dir = \"{}\"\n\n[agent.clean_build_dirs]\n{policy}\n",
        dir.join("local-agent.token").display(),
        dir.join("agent-state").display()
    )
}

/// A webhook that keeps every notice it receives.
pub async fn notice_sink() -> (String, koji_e2e::Received) {
    koji_e2e::json_sink().await
}
