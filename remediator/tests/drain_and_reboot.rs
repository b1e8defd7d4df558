//! `drain_and_reboot` against Koji's real hub (`../shared/koji-hub`) with the real binary
//! as central remediator and as the builder's agent. The builder is played through the
//! hub's own calls, as kojid makes them: it opens a task (`host.openTask`), closes it
//! (`host.closeTask`), says it stops (`host.updateHost(0.0, False)`, as kojid's shutdown
//! does) and checks in again after the "reboot" (the agent's reboot command, a script
//! that records the call). What the remediator did is read back with `koji hostinfo` and
//! `koji list-history`. Under `policy = "approve"` on-call decides through the escalation
//! API before anything touches the builder.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use koji_e2e::Process;
use koji_testkit::{free_port, KojiHub, TestDb};
use serde_json::json;
use support::{config_text, payload, FORWARD_TOKEN, HOST};

const PASSWORD: &str = "builder-password";
const USER: &str = "koji-remediator";
/// A task's result as kojid closes it: an XML-RPC method response.
const DONE: &str = "<?xml version='1.0'?><methodResponse><params><param><value><string>done</string></value></param></params></methodResponse>";

fn start(dir: &Path, name: &str, config: &str, port: u16) -> Process {
    Process::start(
        dir,
        name,
        Path::new(env!("CARGO_BIN_EXE_koji-remediator")),
        &[
            "--config.file".into(),
            dir.join(config).display().to_string(),
            "--web.listen-address".into(),
            format!("127.0.0.1:{port}"),
        ],
    )
}

async fn wait_for<T, F, Fut>(what: &str, seconds: u64, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Koji's hub with the builder (checked in, ready) and the remediator's Koji user holding
/// `host`, as README's setup makes it.
async fn hub_with_builder(db: &TestDb) -> KojiHub {
    let hub = KojiHub::start(db, &[]).await.expect("Koji's hub");
    hub.koji_admin(&["add-host", HOST, "x86_64"]).await.unwrap();
    hub.set_password(HOST, PASSWORD).await.unwrap();
    hub.check_in(HOST, PASSWORD).await.unwrap();
    hub.koji_admin(&["add-user", USER]).await.unwrap();
    hub.koji_admin(&["grant-permission", "host", USER])
        .await
        .unwrap();
    hub
}

/// A task the builder has open, made and opened through the hub as Koji does.
async fn open_task(hub: &KojiHub) -> i64 {
    let made = hub
        .koji_admin(&["call", "makeTask", "sleep", "[600]"])
        .await
        .unwrap();
    let task: i64 = made.trim().parse().unwrap_or_else(|_| panic!("{made}"));
    let opened = hub
        .builder_call(HOST, PASSWORD, "openTask", json!([task]))
        .await
        .unwrap();
    assert_eq!(opened["id"], task, "{opened}");
    task
}

/// `Enabled:` as `koji hostinfo` shows it.
async fn enabled(hub: &KojiHub) -> String {
    let info = hub.koji_anonymous(&["hostinfo", HOST]).await.unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("Enabled: "))
        .unwrap_or_else(|| panic!("no Enabled: in {info}"))
        .trim()
        .to_owned()
}

/// The host's configuration changes `koji list-history` shows, with who made them.
async fn enabled_history(hub: &KojiHub) -> Vec<String> {
    hub.host_config_changes(HOST).await.unwrap()
}

/// The builder's agent: its reboot command plays the machine, checking in again once
/// `go_up` exists.
fn agent_config(d: &Path, hub: &KojiHub, go_up: &Path) -> PathBuf {
    hub.write_rebooting_agent(
        d,
        HOST,
        PASSWORD,
        FORWARD_TOKEN,
        &format!("while [ ! -e '{}' ]; do sleep 0.1; done", go_up.display()),
    )
}

/// The central remediator's configuration: the drain rule under `policy` (`approve` is
/// README's example; on-call alice decides), forwarding to the builder's agent.
fn central_config(
    d: &Path,
    db: &TestDb,
    journal: &TestDb,
    agent_port: u16,
    drain: &str,
    policy: &str,
) {
    std::fs::write(d.join("forward.token"), FORWARD_TOKEN).unwrap();
    std::fs::write(d.join("alice.token"), support::ALICE).unwrap();
    let rules = format!(
        r#"
[[oncall]]
name = "alice"
token_file = "{dd}/alice.token"

[[rule]]
name = "first-oom-on-builder"
alertname = "KojiBuilderFirstOOMToday"
action = "drain_and_reboot"
policy = "{policy}"
cooldown = "0s"
params = {{ drain_timeout = "{drain}", down_timeout = "30s", silent_for = "30s", checkin_timeout = "30s", poll_interval = "200ms" }}

[forwarding]
token_file = "{dd}/forward.token"
actions = []
attempts = 1
timeout = "30s"

[forwarding.agents]
"{HOST}" = "http://127.0.0.1:{agent_port}"
"#,
        dd = d.display()
    );
    std::fs::write(
        d.join("remediator.toml"),
        config_text(d, &db.url, &journal.url, &rules),
    )
    .unwrap();
}

/// One test's world: the builder's agent running, Koji's hub with the builder, a journal,
/// and the central remediator's configuration written (`drain` timeout, `policy`) in
/// `dir`. Fields drop in this order: the agent and the hub before their databases.
struct World {
    _agent: Process,
    hub: KojiHub,
    journal: TestDb,
    _hub_db: TestDb,
    /// Made by the test when the "rebooted" builder may check in again.
    go_up: PathBuf,
    /// What the agent's reboot command recorded.
    reboots: PathBuf,
    agent_port: u16,
    dir: tempfile::TempDir,
}

async fn world(name: &str, drain: &str, policy: &str) -> World {
    let hub_db = TestDb::empty(&format!("{name}_hub")).await.unwrap();
    let hub = hub_with_builder(&hub_db).await;
    let journal = TestDb::empty(&format!("{name}_journal")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let go_up = d.join("go-up");
    let reboots = agent_config(d, &hub, &go_up);
    let agent_port = free_port();
    let agent = start(d, "agent", "agent.toml", agent_port);
    central_config(d, &hub_db, &journal, agent_port, drain, policy);
    World {
        _agent: agent,
        hub,
        journal,
        _hub_db: hub_db,
        go_up,
        reboots,
        agent_port,
        dir,
    }
}

fn oom(fingerprint: &str) -> String {
    payload(
        false,
        &[("alertname", "KojiBuilderFirstOOMToday"), ("host", HOST)],
        fingerprint,
        "2026-11-30T07:00:00Z",
    )
}

async fn post(client: &reqwest::Client, port: u16, body: &str) {
    wait_for("the alert journaled", 30, || async move {
        let response = client
            .post(format!("http://127.0.0.1:{port}/webhook/alertmanager"))
            .bearer_auth(support::WEBHOOK_TOKEN)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
}

/// `(state, outcome)` of run `id` once it has ended.
async fn ended(journal: &tokio_postgres::Client, id: i64, seconds: u64) -> (String, String) {
    wait_for("the run to end", seconds, || async move {
        let row = journal
            .query_opt(
                "SELECT state, outcome FROM koji_remediator.action_runs WHERE id = $1",
                &[&id],
            )
            .await
            .ok()??;
        let state: String = row.get(0);
        (!matches!(state.as_str(), "pending" | "running" | "applying")).then(|| (state, row.get(1)))
    })
    .await
}

/// Lets the "rebooted" builder check in again once run `id` has seen it down (its saved
/// progress): a real reboot keeps a builder down for minutes, longer than any poll, where
/// the script alone would bring it back within a second, before a loaded machine polls.
async fn up_once_seen_down(journal: &tokio_postgres::Client, id: i64, go_up: &Path) {
    wait_for("the host seen down", 60, || async move {
        let row = journal
            .query_opt(
                "SELECT progress FROM koji_remediator.action_runs WHERE id = $1",
                &[&id],
            )
            .await
            .ok()??;
        let progress: Option<serde_json::Value> = row.get(0);
        progress?["seen_down_at"].as_f64().map(|_| ())
    })
    .await;
    std::fs::write(go_up, "").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_builder_is_drained_rebooted_and_enabled_again_across_a_central_kill() {
    let world = world("drain", "120s", "auto").await;
    let (hub, journal, reboots, agent_port) =
        (&world.hub, &world.journal, &world.reboots, world.agent_port);
    let d = world.dir.path();
    let task = open_task(hub).await;

    let port = free_port();
    let first = start(d, "central-first", "remediator.toml", port);
    let client = reqwest::Client::new();
    let symptom = Instant::now();
    post(&client, port, &oom("0d0d0d0d0d0d0d0d")).await;
    wait_for("the host disabled", 30, || async {
        (enabled(hub).await == "no").then_some(())
    })
    .await;
    let journal_db = koji_testkit::test_db::connect(&journal.url).await.unwrap();
    let (id, state): (i64, String) = {
        let row = journal_db
            .query_one("SELECT id, state FROM koji_remediator.action_runs", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(state, "applying");
    // It waits for the open task: no reboot yet.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!reboots.exists(), "no reboot while a task is open");
    let progress: serde_json::Value = journal_db
        .query_one(
            "SELECT progress FROM koji_remediator.action_runs WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        progress["disabled"].is_array() && progress["drained_at"].is_null(),
        "{progress}"
    );
    // On-call sees where it stands in the journal API.
    let runs: serde_json::Value = client
        .get(format!("http://127.0.0.1:{port}/api/v1/journal"))
        .bearer_auth(support::API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(runs[0]["progress"], progress, "{runs:#}");

    // The central remediator dies mid-wait; another takes the run over and resumes it.
    drop(first); // kill -9
    let _second = start(d, "central-second", "remediator.toml", port);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(enabled(hub).await, "no", "still drained");
    hub.builder_call(HOST, PASSWORD, "closeTask", json!([task, DONE]))
        .await
        .unwrap();
    up_once_seen_down(&journal_db, id, &world.go_up).await;
    let (state, outcome) = ended(&journal_db, id, 60).await;
    println!(
        "OOM alert to builder back in service: {:.1} s",
        symptom.elapsed().as_secs_f64()
    );
    println!("{outcome}");
    assert_eq!(state, "succeeded", "{outcome}");
    assert!(
        outcome.contains("resumed after its replica stopped")
            && outcome.contains("disabled buildvm-x86-01.example.org")
            && outcome.contains("enabled again"),
        "{outcome}"
    );
    assert_eq!(
        std::fs::read_to_string(reboots).unwrap(),
        "reboot\n",
        "rebooted once, after the task closed"
    );
    assert_eq!(enabled(hub).await, "yes");
    assert_eq!(
        enabled_history(hub).await,
        [
            format!("{USER}: enabled: True -> False"),
            format!("{USER}: enabled: False -> True"),
        ],
        "Koji's history shows exactly the drain's two changes, credited to its user"
    );

    // The agent reboots its own machine only, whoever asks.
    let answer: serde_json::Value = client
        .post(format!("http://127.0.0.1:{agent_port}/api/v1/agent/run"))
        .bearer_auth(FORWARD_TOKEN)
        .json(&json!({
            "journal": "another", "run": 99, "action": "reboot_host",
            "labels": {"host": "buildvm-x86-02.example.org"},
            "plan_only": false, "keep_buildroots": [], "knobs": {}
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["state"], "refused", "{answer}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(std::fs::read_to_string(reboots).unwrap(), "reboot\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_refuses_a_disabled_host_and_leaves_the_host_disabled_when_a_step_fails() {
    let world = world("drain_fail", "3s", "auto").await;
    let (hub, journal, reboots, go_up) = (&world.hub, &world.journal, &world.reboots, &world.go_up);
    let d = world.dir.path();
    let port = free_port();
    let _central = start(d, "central", "remediator.toml", port);
    let client = reqwest::Client::new();
    let journal_db = koji_testkit::test_db::connect(&journal.url).await.unwrap();

    // Taken out of service by someone: left alone.
    hub.koji_admin(&["disable-host", HOST]).await.unwrap();
    post(&client, port, &oom("1e1e1e1e1e1e1e1e")).await;
    let (state, outcome) = ended(&journal_db, 1, 30).await;
    assert_eq!(state, "refused", "{outcome}");
    assert!(outcome.contains("disabled already (by admin"), "{outcome}");

    // A task that outlasts the drain timeout: the host stays disabled, no reboot, and the
    // failure says what remains.
    hub.koji_admin(&["enable-host", HOST]).await.unwrap();
    let task = open_task(hub).await;
    post(&client, port, &oom("2f2f2f2f2f2f2f2f")).await;
    let (state, outcome) = ended(&journal_db, 2, 30).await;
    assert_eq!(state, "failed", "{outcome}");
    assert!(
        outcome.contains(&format!("1 task(s) of {HOST} still open"))
            && outcome.contains(&format!("(tasks {task})"))
            && outcome.contains(&format!("`koji enable-host {HOST}`")),
        "{outcome}"
    );
    assert_eq!(enabled(hub).await, "no");
    assert!(!reboots.exists(), "never rebooted");

    // Someone changes the host while it is down: not enabled over their change.
    hub.builder_call(HOST, PASSWORD, "closeTask", json!([task, DONE]))
        .await
        .unwrap();
    hub.koji_admin(&["enable-host", HOST]).await.unwrap();
    post(&client, port, &oom("3a3a3a3a3a3a3a3a")).await;
    wait_for("the reboot", 30, || async {
        reboots.exists().then_some(())
    })
    .await;
    hub.koji_admin(&["edit-host", HOST, "--capacity", "3"])
        .await
        .unwrap();
    std::fs::write(go_up, "").unwrap();
    let (state, outcome) = ended(&journal_db, 3, 60).await;
    assert_eq!(state, "failed", "{outcome}");
    assert!(
        outcome.contains(&format!("someone changed {HOST} while it was drained"))
            && outcome.contains("by admin")
            && outcome.contains(&format!("`koji enable-host {HOST}`")),
        "{outcome}"
    );
    assert_eq!(
        enabled(hub).await,
        "no",
        "left as the administrator left it"
    );
    assert_eq!(
        enabled_history(hub).await,
        [
            "admin: enabled: True -> False".to_string(),
            "admin: enabled: False -> True".to_string(),
            format!("{USER}: enabled: True -> False"),
            "admin: enabled: False -> True".to_string(),
            format!("{USER}: enabled: True -> False"),
            "admin: capacity: 2.0 -> 3.0".to_string(),
        ]
    );
}

/// The escalation awaiting on-call's decision, once planned.
async fn planned_escalation(client: &reqwest::Client, port: u16) -> serde_json::Value {
    wait_for("a planned escalation", 30, || async move {
        let url = format!("http://127.0.0.1:{port}/api/v1/escalations");
        let list = koji_e2e::get_json(client, &url, Some(support::API_TOKEN)).await?;
        list.as_array()?
            .iter()
            .find(|e| e["state"] == "awaiting_approval" && e["plan"].is_string())
            .cloned()
    })
    .await
}

/// On-call alice's `verb` (`approve` or `reject`) on escalation `id`: the HTTP status.
async fn decide(client: &reqwest::Client, port: u16, id: i64, verb: &str) -> u16 {
    client
        .post(format!(
            "http://127.0.0.1:{port}/api/v1/escalations/{id}/{verb}"
        ))
        .bearer_auth(support::ALICE)
        .body(r#"{"reason": "first OOM on this builder today"}"#)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Under `policy = "approve"` (README's example for a first OOM) nothing touches the
/// builder before on-call decides: the plan waits while the host stays enabled and is not
/// rebooted; a rejection ends it so; an approved one drains, reboots and enables it, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_waits_for_on_call_and_a_rejected_one_changes_nothing() {
    let world = world("drain_approve", "60s", "approve").await;
    let (hub, journal, reboots) = (&world.hub, &world.journal, &world.reboots);
    let d = world.dir.path();
    let port = free_port();
    let _central = start(d, "central", "remediator.toml", port);
    let client = reqwest::Client::new();

    post(&client, port, &oom("0e0e0e0e0e0e0e0e")).await;
    let first = planned_escalation(&client, port).await;
    let plan = first["plan"].as_str().unwrap();
    assert!(plan.contains(HOST), "{first}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(enabled(hub).await, "yes", "nothing before on-call decides");
    assert!(!reboots.exists(), "no reboot before on-call decides");
    assert_eq!(
        decide(&client, port, first["id"].as_i64().unwrap(), "reject").await,
        200
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(enabled(hub).await, "yes", "rejected: the host untouched");
    assert!(!reboots.exists(), "rejected: no reboot");
    assert_eq!(enabled_history(hub).await, Vec::<String>::new());

    // The next occurrence, approved: drained, rebooted and back, exactly once.
    post(&client, port, &oom("0f0f0f0f0f0f0f0f")).await;
    let second = planned_escalation(&client, port).await;
    let id = second["id"].as_i64().unwrap();
    assert_ne!(second["id"], first["id"]);
    assert_eq!(decide(&client, port, id, "approve").await, 200);
    let journal_db = koji_testkit::test_db::connect(&journal.url).await.unwrap();
    up_once_seen_down(&journal_db, id, &world.go_up).await;
    let (state, outcome) = ended(&journal_db, id, 60).await;
    assert_eq!(state, "succeeded", "{outcome}");
    assert_eq!(std::fs::read_to_string(reboots).unwrap(), "reboot\n");
    assert_eq!(enabled(hub).await, "yes");
    assert_eq!(
        enabled_history(hub).await,
        [
            format!("{USER}: enabled: True -> False"),
            format!("{USER}: enabled: False -> True"),
        ],
        "Koji's history shows the approved drain alone"
    );
}

/// What reboots a builder is the builder's own policy: a rule can neither name
/// `reboot_host` (it would reboot without a drain) nor give a drain a command.
#[test]
fn a_rule_cannot_reboot_without_a_drain_nor_name_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let rule = |action: &str, params: &str| {
        let text = config_text(
            dir.path(),
            "postgresql://localhost/hub",
            "postgresql://localhost/journal",
            &format!(
                "[[rule]]\nname = \"oom\"\nalertname = \"KojiBuilderFirstOOMToday\"\naction = \"{action}\"\npolicy = \"auto\"\nparams = {params}\n"
            ),
        );
        koji_remediator::config::Config::parse(&text, Path::new("t.toml"))
            .map(|_| ())
            .map_err(|error| error.to_string())
    };
    let refused = rule("reboot_host", "{}").unwrap_err();
    assert!(
        refused.contains("reboot_host is asked of an agent by drain_and_reboot"),
        "{refused}"
    );
    let refused = rule("drain_and_reboot", "{ command = [\"/sbin/reboot\"] }").unwrap_err();
    assert!(
        refused.contains("the reboot command is each builder's own policy"),
        "{refused}"
    );
    rule("drain_and_reboot", "{ drain_timeout = \"2h\" }").expect("a drain's own knobs");
}
