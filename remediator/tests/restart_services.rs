//! The ordered restart against stand-ins with real HTTP: a hub agent and two builder agents
//! whose restart commands are recording scripts, a hub health endpoint that answers only
//! once httpd has been restarted, and the hub database telling which builder reconnected.
//! The order must be httpd, kojira, then kojid only on the builder that stayed silent.

mod support;

use std::path::Path;
use std::sync::Arc;

use koji_remediator::config::Config;
use koji_testkit::mounts::run;
use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion};
use support::{notice_sink, payload, Remediator};

const TOKEN: &str = "forwarding-token-restart-test-0123";

async fn start_agent(dir: &Path, host: &str) -> String {
    let token = dir.join(format!("{host}.token"));
    std::fs::write(&token, TOKEN).unwrap();
    let text = format!(
        "[agent]\ntoken_file = \"{}\"\nactions = [\"restart_local_services\"]\nhost_name = \"{host}\"\nstate_dir = \"{d}/{host}-state\"\n\n[agent.restart_local_services]\nservices = [\"httpd\", \"kojira\", \"kojid\"]\nrestart_command = [\"{d}/restart\", \"{host}\"]\nis_active_command = [\"/bin/true\"]\n",
        token.display(),
        d = dir.display()
    );
    let app = koji_remediator::start(Config::parse(&text, Path::new("agent.toml")).unwrap())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        koji_remediator::http::run(
            listener,
            app,
            koji_tls::Transport::Plain,
            std::future::pending(),
        )
        .await
        .unwrap();
    });
    base
}

/// A hub XML-RPC stand-in: 503 until `up` exists, then a getAPIVersion answer.
async fn hub_health(up: std::path::PathBuf) -> String {
    let up = Arc::new(up);
    let app = axum::Router::new().route(
        "/kojihub",
        axum::routing::post(move || {
            let up = up.clone();
            async move {
                if up.exists() {
                    (axum::http::StatusCode::OK, "<?xml version='1.0'?><methodResponse><params><param><value><int>1</int></value></param></params></methodResponse>")
                } else {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/kojihub", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The runbook rule for `alertname` (restart_services, auto) with `[forwarding]` to the
/// given agents, and `[notify]` to `notices_url` when given.
fn restart_rules(
    d: &Path,
    alertname: &str,
    notices_url: Option<&str>,
    params: &str,
    agents: &[(&str, &str)],
) -> String {
    let notify = notices_url.map_or(String::new(), |url| {
        format!("[notify]\nwebhook_url = \"{url}\"\ncontact = \"koji-admins@example.org\"\n")
    });
    let agents: String = agents
        .iter()
        .map(|(host, url)| format!("\"{host}\" = \"{url}\"\n"))
        .collect();
    format!(
        "{notify}\n[[rule]]\nname = \"restart-koji\"\nalertname = \"{alertname}\"\n\
         action = \"restart_services\"\npolicy = \"auto\"\nparams = {{ {params} }}\n\n\
         [forwarding]\ntoken_file = \"{d}/central.token\"\nactions = []\nattempts = 1\n\n\
         [forwarding.agents]\n{agents}",
        d = d.display()
    )
}

/// A restart command that only records what it was asked, in `log`.
fn recording_restart_command(d: &Path, log: &Path) {
    std::fs::write(
        d.join("restart"),
        format!("#!/bin/sh\necho \"$1 $2\" >> {}\n", log.display()),
    )
    .unwrap();
    run(&["chmod", "+x", d.join("restart").to_str().unwrap()]);
    std::fs::write(d.join("central.token"), TOKEN).unwrap();
}

/// The notices received, once there is one (at most 5 s).
async fn notices_received(
    notices: &std::sync::Mutex<Vec<serde_json::Value>>,
) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        if !notices.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    notices.lock().unwrap().clone()
}

#[tokio::test]
async fn hub_first_then_only_builders_that_do_not_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("restarts.log");
    let up = d.join("hub-up");
    let hub_agent = start_agent(d, "hub.example.org").await;
    let agent_a = start_agent(d, "buildvm-a.example.org").await;
    let agent_b = start_agent(d, "buildvm-b.example.org").await;
    let health = hub_health(up.clone()).await;

    let rules = restart_rules(
        d,
        "KojiHubRestartNeeded",
        None,
        &format!("hub_host = \"hub.example.org\", hub_health_url = \"{health}\", hub_wait = \"10s\", builder_grace = \"1s\""),
        &[
            ("hub.example.org", &hub_agent),
            ("buildvm-a.example.org", &agent_a),
            ("buildvm-b.example.org", &agent_b),
        ],
    );
    std::fs::write(d.join("central.token"), TOKEN).unwrap();
    let remediator = Remediator::start(KojiVersion::V1_33, &rules).await;
    let hub_db = &remediator.hub.client;
    for (name, enabled) in [
        ("buildvm-a.example.org", true),
        ("buildvm-b.example.org", true),
        ("buildvm-c.example.org", false),
    ] {
        let mut spec = HostSpec::new(name);
        spec.enabled = enabled;
        spec.update_age_seconds = Some(600.0);
        add_host(hub_db, KojiVersion::V1_33, &spec).await.unwrap();
    }
    // The restart "command": records the call; httpd's restart brings the hub up, and
    // kojira's lets builder A reconnect by itself (its next check-in).
    std::fs::write(
        d.join("restart"),
        format!(
            "#!/bin/sh\necho \"$1 $2\" >> {log}\n\
             [ \"$2\" = httpd ] && touch {up}\n\
             [ \"$2\" = kojira ] && psql -q -X \"{url}\" -c \"UPDATE host SET update_time = now() + interval '1 second' WHERE name = 'buildvm-a.example.org'\"\n\
             exit 0\n",
            log = log.display(),
            up = up.display(),
            url = remediator.hub.url,
        ),
    )
    .unwrap();
    run(&["chmod", "+x", d.join("restart").to_str().unwrap()]);

    let labels = [
        ("alertname", "KojiHubRestartNeeded"),
        ("severity", "critical"),
    ];
    let body = payload(false, &labels, "7777777777777777", "2026-11-28T21:00:00Z");
    assert_eq!(remediator.post(&body).await.0, 200);
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "hub.example.org httpd\nhub.example.org kojira\nbuildvm-b.example.org kojid\n",
        "hub first, then only the builder that stayed silent (not the disabled one)"
    );
    let outcome = runs[0]["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("restarted kojid on buildvm-b.example.org"),
        "{outcome}"
    );
}

#[tokio::test]
async fn a_hub_that_does_not_come_back_stops_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("restarts.log");
    let hub_agent = start_agent(d, "hub.example.org").await;
    let agent_b = start_agent(d, "buildvm-b.example.org").await;
    let health = hub_health(d.join("never")).await;
    recording_restart_command(d, &log);
    let (notices_url, notices) = notice_sink().await;
    let rules = restart_rules(
        d,
        "KojiHubRestartNeeded",
        Some(&notices_url),
        &format!("hub_host = \"hub.example.org\", hub_health_url = \"{health}\", hub_wait = \"2s\", builder_grace = \"0s\""),
        &[("hub.example.org", &hub_agent), ("buildvm-b.example.org", &agent_b)],
    );
    let remediator = Remediator::start(KojiVersion::V1_33, &rules).await;
    let mut spec = HostSpec::new("buildvm-b.example.org");
    spec.update_age_seconds = Some(600.0);
    add_host(&remediator.hub.client, KojiVersion::V1_33, &spec)
        .await
        .unwrap();

    let labels = [("alertname", "KojiHubRestartNeeded")];
    remediator
        .post(&payload(
            false,
            &labels,
            "8888888888888888",
            "2026-11-28T22:00:00Z",
        ))
        .await;
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "failed", "{runs:#?}");
    assert!(
        runs[0]["outcome"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{runs:#?}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "hub.example.org httpd\nhub.example.org kojira\n",
        "no builder touched after the hub failed to come back"
    );
    // The failure is escalated to a human.
    let received = notices_received(&notices).await;
    assert_eq!(received.len(), 1, "{received:?}");
    let text = received[0]["text"].as_str().unwrap();
    assert!(
        text.contains("the automatic fix FAILED and needs a human"),
        "{text}"
    );
    assert!(text.contains("did not answer"), "{text}");
}

/// The runbook: with PostgreSQL down, restarting Koji would not help. Nothing is
/// restarted; the run fails and on-call gets its notice.
#[tokio::test]
async fn nothing_is_restarted_while_the_database_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("restarts.log");
    let hub_agent = start_agent(d, "hub.example.org").await;
    let health = hub_health(d.join("up")).await;
    std::fs::write(d.join("up"), "").unwrap();
    recording_restart_command(d, &log);
    let (notices_url, notices) = notice_sink().await;
    let rules = restart_rules(
        d,
        "KojiHubNotAnswering",
        Some(&notices_url),
        &format!("hub_host = \"hub.example.org\", hub_health_url = \"{health}\", hub_wait = \"2s\", builder_grace = \"0s\""),
        &[("hub.example.org", &hub_agent)],
    );
    // The hub database the remediator is configured with: nothing listens there.
    let hub = koji_testkit::TestDb::koji("restart_db_down", KojiVersion::V1_33)
        .await
        .unwrap();
    let journal = koji_testkit::TestDb::empty("restart_db_down_journal")
        .await
        .unwrap();
    let dead = "host=127.0.0.1 port=9 user=postgres dbname=koji connect_timeout=1";
    let remediator = Remediator::start_on(hub, dead, journal.url.clone(), &rules).await;
    let labels = [("alertname", "KojiHubNotAnswering")];
    remediator
        .post(&payload(
            false,
            &labels,
            "9999999999999999",
            "2026-11-30T05:00:00Z",
        ))
        .await;
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "failed", "{runs:#?}");
    assert_eq!(runs[0]["effect"], "none", "{runs:#?}");
    let outcome = runs[0]["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("restarting Koji would not help, nothing restarted"),
        "{outcome}"
    );
    assert!(!log.exists(), "nothing was restarted");
    let received = notices_received(&notices).await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(
        received[0]["text"]
            .as_str()
            .unwrap()
            .contains("restarting Koji would not help"),
        "{received:?}"
    );
    drop(journal);
}

/// A private cluster with ten usable slots, nine of them held by idle `koji` connections
/// whose last query is 2.5 s old; its Koji database's connection string.
async fn slots_nearly_full() -> (
    koji_testkit::TempCluster,
    Vec<tokio_postgres::Client>,
    String,
) {
    let cluster = tokio::task::spawn_blocking(|| {
        koji_testkit::TempCluster::start_new(&[
            "max_connections = 14",
            "superuser_reserved_connections = 4",
        ])
    })
    .await
    .unwrap()
    .expect("a private PostgreSQL cluster");
    let admin = koji_testkit::test_db::connect(&cluster.url("postgres"))
        .await
        .unwrap();
    admin.batch_execute("CREATE DATABASE koji").await.unwrap();
    admin.batch_execute("CREATE ROLE koji LOGIN").await.unwrap();
    let hub_url = cluster.url("koji");
    let hub_db = koji_testkit::test_db::connect(&hub_url).await.unwrap();
    KojiVersion::V1_33.create_schema(&hub_db).await.unwrap();
    // Superusers' connections count too: only the nine are left open.
    drop((admin, hub_db));
    let mut held = Vec::new();
    for _ in 0..9 {
        let client = koji_testkit::test_db::connect(&format!(
            "{} application_name=httpd",
            hub_url.replace("user=postgres", "user=koji")
        ))
        .await
        .unwrap();
        client.simple_query("SELECT 1").await.unwrap();
        held.push(client);
    }
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    (cluster, held, hub_url)
}

/// Posts KojiHubNotAnswering to a remediator on `hub_url` whose rule treats connections
/// idle for `stale_older_than` as stale; the ended run, and the restart log.
async fn restart_with_slots_nearly_full(
    hub_url: &str,
    stale_older_than: &str,
) -> (serde_json::Value, Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("restarts.log");
    let hub_agent = start_agent(d, "hub.example.org").await;
    let health = hub_health(d.join("up")).await;
    std::fs::write(d.join("up"), "").unwrap();
    recording_restart_command(d, &log);
    let rules = restart_rules(
        d,
        "KojiHubNotAnswering",
        None,
        &format!("hub_host = \"hub.example.org\", hub_health_url = \"{health}\", hub_wait = \"2s\", builder_grace = \"0s\", stale_older_than = \"{stale_older_than}\""),
        &[("hub.example.org", &hub_agent)],
    );
    let stand_in = koji_testkit::TestDb::koji("restart_slots", KojiVersion::V1_33)
        .await
        .unwrap();
    let journal = koji_testkit::TestDb::empty("restart_slots_journal")
        .await
        .unwrap();
    let remediator = Remediator::start_on(stand_in, hub_url, journal.url.clone(), &rules).await;
    let labels = [("alertname", "KojiHubNotAnswering")];
    remediator
        .post(&payload(
            false,
            &labels,
            "5151515151515151",
            "2026-11-30T06:00:00Z",
        ))
        .await;
    let run = remediator.finished_runs(1).await[0].clone();
    (run, std::fs::read_to_string(&log).ok())
}

/// The runbook's order: with the database's connection slots nearly all used, stale
/// connections are cleared first, then Koji is restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_connections_are_cleared_before_a_restart_when_slots_run_out() {
    let (cluster, held, hub_url) = slots_nearly_full().await;
    let (run, log) = restart_with_slots_nearly_full(&hub_url, "2s").await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let outcome = run["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("connection slots were in use, so stale connections were cleared first")
            && outcome.contains("terminated 9 of 9"),
        "{outcome}"
    );
    assert_eq!(
        log.as_deref(),
        Some("hub.example.org httpd\nhub.example.org kojira\n"),
        "then the hub was restarted"
    );
    for client in &held {
        assert!(client.simple_query("SELECT 1").await.is_err());
    }
    drop(cluster);
}

/// Slots nearly all used by connections that are not stale: clearing frees nothing, so
/// nothing is restarted and on-call is told (the run fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_restarted_while_the_slots_stay_full() {
    let (cluster, held, hub_url) = slots_nearly_full().await;
    let (run, log) = restart_with_slots_nearly_full(&hub_url, "1h").await;
    assert_eq!(run["state"], "failed", "{run:#}");
    assert_eq!(run["effect"], "none", "{run:#}");
    let outcome = run["outcome"].as_str().unwrap();
    assert!(outcome.contains("nothing restarted"), "{outcome}");
    assert_eq!(log, None, "nothing was restarted");
    for client in &held {
        assert!(client.simple_query("SELECT 1").await.is_ok());
    }
    drop(cluster);
}
