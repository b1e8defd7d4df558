//! The runbook's "restart Koji", end to end with every real part and Koji's real hub
//! (`../shared/koji-hub`): the hub's process dies while its database answers;
//! koji-exporter's probe (`getLastEvent`) reports `koji_hub_up 0`, Prometheus fires
//! `KojiHubNotAnswering` (real rules, `for:` shortened), Alertmanager posts to
//! koji-remediator, whose `restart_services` asks the hub's agent to restart httpd (its
//! restart command serves the real hub again) and kojira, waits for the hub's XML-RPC,
//! gives builders a grace period, and has kojid restarted only on the builder that stayed
//! silent: builder A checks in again by itself (through `host.updateHost`, as kojid
//! does), builder B does not, builder C is disabled in Koji. The agents are real
//! koji-remediator processes whose restart commands record what they were asked. And the
//! other case: a database restart the hub recovers from by itself restarts nothing.

use std::time::{Duration, Instant};

use koji_e2e::{
    alert_active, free_port, get_json, start_alertmanager, start_binary, start_central_remediator,
    start_prometheus_with_for, wait_for, Central, Process,
};
use koji_testkit::{KojiHub, TestDb};

const WEBHOOK_TOKEN: &str = "hub-restart-webhook-token-0123456789";
const API_TOKEN: &str = "hub-restart-api-token-9876543210abc";
const FORWARD_TOKEN: &str = "hub-restart-forwarding-token-abcdef01";
const HUB_HOST: &str = "koji-hub.example.org";
const BUILDERS: [&str; 3] = [
    "buildvm-a.example.org",
    "buildvm-b.example.org",
    "buildvm-c.example.org",
];
const PASSWORD: &str = "builder-password";

/// The hub served again by the restart script: stopped when the test ends.
struct RestartedHub(std::path::PathBuf);

impl Drop for RestartedHub {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
    }
}

fn start_agent(d: &std::path::Path, host: &str) -> (Process, u16) {
    let port = free_port();
    let config = format!("{host}.toml");
    std::fs::write(
        d.join(&config),
        format!(
            "[agent]\ntoken_file = \"{d}/forwarding.token\"\nactions = [\"restart_local_services\"]\n\
             host_name = \"{host}\"\nstate_dir = \"{d}/{host}-state\"\n\n\
             [agent.restart_local_services]\nservices = [\"httpd\", \"kojira\", \"kojid\"]\n\
             restart_command = [\"{d}/restart\", \"{host}\"]\nis_active_command = [\"/bin/true\"]\n",
            d = d.display()
        ),
    )
    .unwrap();
    (
        start_binary(d, host, "koji-remediator", &config, port, &[]),
        port,
    )
}

/// The running parts of a loop.
struct Loop {
    processes: Vec<Process>,
    prom: String,
    journal_url: String,
    client: reqwest::Client,
}

impl Loop {
    fn all(&self) -> Vec<&Process> {
        self.processes.iter().collect()
    }

    async fn wait_for_hub_up(&self, want: &str, what: &str) {
        wait_for(what, Duration::from_secs(60), &self.all(), || async {
            let body = get_json(
                &self.client,
                &format!("{}/api/v1/query?query=koji_hub_up", self.prom),
                None,
            )
            .await?;
            (body["data"]["result"][0]["value"][1] == want).then_some(())
        })
        .await;
    }

    /// `koji_db_server_start_time_seconds` as Prometheus has it now (0 before it has one).
    async fn database_start_time(&self) -> f64 {
        let body = get_json(
            &self.client,
            &format!(
                "{}/api/v1/query?query=koji_db_server_start_time_seconds",
                self.prom
            ),
            None,
        )
        .await;
        body.and_then(|body| body["data"]["result"][0]["value"][1].as_str()?.parse().ok())
            .unwrap_or(0.0)
    }

    async fn runs(&self) -> Option<Vec<serde_json::Value>> {
        let runs = get_json(&self.client, &self.journal_url, Some(API_TOKEN)).await?;
        runs.as_array().cloned()
    }
}

/// Everything but the hub: the three agents, koji-exporter on the hub's database and
/// XML-RPC, the central remediator with the example runbook's rule (automatic here),
/// Alertmanager, and Prometheus with the real rules (`for:` set to `for_override`);
/// returns once Prometheus sees the hub up.
async fn start_loop(
    d: &std::path::Path,
    hub: &KojiHub,
    hub_db_url: &str,
    journal_url: &str,
    for_override: &str,
) -> Loop {
    std::fs::write(d.join("forwarding.token"), FORWARD_TOKEN).unwrap();
    let (hub_agent, hub_agent_port) = start_agent(d, HUB_HOST);
    let (agent_a, agent_a_port) = start_agent(d, BUILDERS[0]);
    let (agent_b, agent_b_port) = start_agent(d, BUILDERS[1]);

    // koji-exporter on the hub: its database and its XML-RPC.
    let exporter_port = free_port();
    std::fs::write(
        d.join("exporter.toml"),
        format!(
            "[web]\nscrape_timeout = \"5s\"\n[database]\nurl = \"{}\"\npool_size = 4\n\
             [hub]\nurl = \"{}\"\nprobe_timeout = \"2s\"\n\
             [collectors]\nkoji_db = true\nkoji_hub = true\nkoji_hosts = true\nkoji_tasks = false\n\
             pg_stat_activity = false\nbuilder_health = false\nfilesystems = false\n\
             services = false\nbuilddirs = false\n",
            hub_db_url, hub.url
        ),
    )
    .unwrap();
    let exporter = start_binary(
        d,
        "koji-exporter",
        "koji-exporter",
        "exporter.toml",
        exporter_port,
        &[],
    );

    // The central remediator with the example runbook's rule, automatic here.
    let central = Central {
        webhook_token: WEBHOOK_TOKEN,
        api_token: API_TOKEN,
        journal_url,
        hub_url: hub_db_url,
    };
    let d_text = d.display().to_string();
    let (remediator, remediator_port) = start_central_remediator(
        d,
        &central,
        "",
        &format!(
            r#"
[[rule]]
name = "hub-not-answering"
alertname = "KojiHubNotAnswering"
action = "restart_services"
policy = "auto"
cooldown = "30m"
params = {{ hub_host = "{HUB_HOST}", hub_health_url = "{hub_url}", hub_wait = "60s", builder_grace = "3s" }}

[forwarding]
token_file = "{d_text}/forwarding.token"
actions = []
attempts = 1

[forwarding.agents]
"{HUB_HOST}" = "http://127.0.0.1:{hub_agent_port}"
"{a}" = "http://127.0.0.1:{agent_a_port}"
"{b}" = "http://127.0.0.1:{agent_b_port}"
"#,
            hub_url = hub.url,
            a = BUILDERS[0],
            b = BUILDERS[1],
        ),
    );
    let (alertmanager, am_port) = start_alertmanager(
        d,
        &format!("http://127.0.0.1:{remediator_port}/webhook/alertmanager"),
        &d.join("webhook.token"),
    );
    let (prometheus, prom) =
        start_prometheus_with_for(d, &[("koji-hub", exporter_port)], am_port, for_override);
    let running = Loop {
        processes: vec![
            exporter,
            remediator,
            alertmanager,
            prometheus,
            hub_agent,
            agent_a,
            agent_b,
        ],
        prom,
        journal_url: format!("http://127.0.0.1:{remediator_port}/api/v1/journal"),
        client: reqwest::Client::new(),
    };
    running
        .wait_for_hub_up("1", "Prometheus to see the hub up")
        .await;
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_hub_is_restarted_first_then_only_the_silent_builder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hub_db = TestDb::empty("hub_restart").await.unwrap();
    let mut hub = KojiHub::start(&hub_db, &[]).await.expect("Koji's hub");
    for builder in BUILDERS {
        hub.koji_admin(&["add-host", builder, "x86_64"])
            .await
            .unwrap();
        hub.set_password(builder, PASSWORD).await.unwrap();
    }
    hub.koji_admin(&["disable-host", BUILDERS[2]])
        .await
        .unwrap();
    for builder in &BUILDERS[..2] {
        hub.check_in(builder, PASSWORD).await.unwrap();
    }
    let journal = TestDb::empty("hub_restart_journal").await.unwrap();

    // The machines' restart command: records the call; restarting httpd on the hub serves
    // the real hub again, and builder A reconnects by itself once kojira is back.
    let log = d.join("restarts.log");
    let pid_file = d.join("hub.pid");
    let _restarted = RestartedHub(pid_file.clone());
    std::fs::write(
        d.join("restart"),
        format!(
            "#!/bin/sh\necho \"$1 $2\" >> '{log}'\n\
             if [ \"$1 $2\" = '{HUB_HOST} httpd' ]; then\n  {serve} > '{d}/hub-again.log' 2>&1 &\n  echo $! > '{pid}'\nfi\n\
             if [ \"$1 $2\" = '{HUB_HOST} kojira' ]; then\n  for i in $(seq 50); do {check_in} && break; sleep 0.2; done\nfi\n\
             exit 0\n",
            log = log.display(),
            serve = hub.serve_command_line(),
            d = d.display(),
            pid = pid_file.display(),
            check_in = hub.check_in_command_line(BUILDERS[0], PASSWORD),
        ),
    )
    .unwrap();
    koji_testkit::mounts::run(&["chmod", "+x", d.join("restart").to_str().unwrap()]);
    std::fs::write(d.join("forwarding.token"), FORWARD_TOKEN).unwrap();
    let running = start_loop(d, &hub, &hub_db.url, &journal.url, "2s").await;

    // The symptom: the hub's process dies; its database still answers.
    hub.kill().await.unwrap();
    let symptom = Instant::now();
    let run = wait_for(
        "the remediator to restart Koji",
        Duration::from_secs(120),
        &running.all(),
        || async {
            running
                .runs()
                .await?
                .iter()
                .find(|run| {
                    run["state"] != "pending"
                        && run["state"] != "running"
                        && run["state"] != "applying"
                })
                .cloned()
        },
    )
    .await;
    println!(
        "symptom to restart done: {:.1} s",
        symptom.elapsed().as_secs_f64()
    );
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(run["action"], "restart_services");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!(
            "{HUB_HOST} httpd\n{HUB_HOST} kojira\n{} kojid\n",
            BUILDERS[1]
        ),
        "the hub first, then kojid only on the builder that stayed silent (not the one that \
         checked in again, not the disabled one)"
    );

    // The hub answers again and the alert resolves; nothing is restarted twice.
    running
        .wait_for_hub_up("1", "the hub up again in Prometheus")
        .await;
    wait_for(
        "KojiHubNotAnswering to resolve",
        Duration::from_secs(60),
        &running.all(),
        || async {
            let firing =
                alert_active(&running.client, &running.prom, "KojiHubNotAnswering").await?;
            (!firing).then_some(())
        },
    )
    .await;
    println!(
        "symptom to alert resolved: {:.1} s",
        symptom.elapsed().as_secs_f64()
    );
    let runs = running.runs().await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    // Restarts change no host: Koji's history shows the administrator's setup only.
    for builder in BUILDERS {
        let expected: &[&str] = if builder == BUILDERS[2] {
            &["admin: enabled: True -> False"]
        } else {
            &[]
        };
        assert_eq!(
            hub.host_config_changes(builder).await.unwrap(),
            expected,
            "{builder}"
        );
    }
}

/// The runbook's other case: PostgreSQL restarts under a running hub, which reconnects by
/// itself. Nothing is restarted: `KojiHubNotAnswering` never fires (its `for:` here 15 s,
/// still far shorter than the real 3 minutes) and the remediator journals no run. The
/// database runs in a private cluster the test restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_that_recovers_from_a_database_restart_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cluster = tokio::task::spawn_blocking(|| koji_testkit::TempCluster::start_new(&[]))
        .await
        .unwrap()
        .expect("a private PostgreSQL cluster");
    let admin = koji_testkit::test_db::connect(&cluster.url("postgres"))
        .await
        .unwrap();
    admin.batch_execute("CREATE DATABASE koji").await.unwrap();
    let hub_db_url = cluster.url("koji");
    let hub = KojiHub::start_on(&hub_db_url, "koji", &[])
        .await
        .expect("Koji's hub");
    for builder in &BUILDERS[..2] {
        hub.koji_admin(&["add-host", builder, "x86_64"])
            .await
            .unwrap();
    }
    let journal = TestDb::empty("hub_recovers_journal").await.unwrap();
    let log = d.join("restarts.log");
    std::fs::write(
        d.join("restart"),
        format!("#!/bin/sh\necho \"$1 $2\" >> '{}'\n", log.display()),
    )
    .unwrap();
    koji_testkit::mounts::run(&["chmod", "+x", d.join("restart").to_str().unwrap()]);
    std::fs::write(d.join("forwarding.token"), FORWARD_TOKEN).unwrap();
    let running = start_loop(d, &hub, &hub_db_url, &journal.url, "15s").await;
    let started_before = running.database_start_time().await;

    // The database restarts (every client disconnected), and comes back.
    let restarted = Instant::now();
    let stopping = &cluster;
    tokio::task::block_in_place(|| {
        stopping.stop().unwrap();
        std::thread::sleep(Duration::from_secs(2));
        stopping.start().unwrap();
    });
    wait_for(
        "the exporter to see the restarted database",
        Duration::from_secs(60),
        &running.all(),
        || async {
            let now = running.database_start_time().await;
            (now > started_before).then_some(())
        },
    )
    .await;
    running
        .wait_for_hub_up("1", "the hub answering again by itself")
        .await;
    println!(
        "database restart to hub answering: {:.1} s",
        restarted.elapsed().as_secs_f64()
    );
    // Longer than the alert's `for:` here: it never fires, nothing is restarted.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let fired = get_json(
        &running.client,
        &format!(
            "{}/api/v1/query?query=max_over_time(ALERTS%7Balertname%3D%22KojiHubNotAnswering%22%2Calertstate%3D%22firing%22%7D%5B5m%5D)",
            running.prom
        ),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        fired["data"]["result"].as_array().map(Vec::len),
        Some(0),
        "KojiHubNotAnswering fired: {fired:#}"
    );
    assert_eq!(running.runs().await.unwrap().len(), 0);
    assert!(!log.exists(), "nothing was restarted");
    drop(hub);
    drop(cluster);
}
