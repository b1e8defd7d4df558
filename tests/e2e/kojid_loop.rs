//! kojid stopping on a builder, end to end: a real process named `kojid` (a copy of
//! `sleep`) runs on "the builder"; koji-exporter's services collector sees it, Prometheus
//! evaluates the real `KojiBuilderDaemonDown` (`for:` shortened), Alertmanager posts to the
//! central koji-remediator, which forwards `restart_local_services` to the builder's agent
//! (a real koji-remediator process), whose own restart command starts kojid again. Killed
//! twice, kojid is restarted twice; killed a third time within the hour, the rule's
//! `max_runs_per_hour = 2` holds the fix and on-call gets the notice instead. The hub is
//! Koji's real one: its history shows no change of the builder afterwards.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use koji_e2e::{
    free_port, get_json, start_alertmanager, start_binary, start_central_remediator,
    start_prometheus, wait_for, Central,
};
use koji_testkit::{KojiHub, TestDb};
use serde_json::Value;

const WEBHOOK_TOKEN: &str = "kojid-loop-webhook-token-0123456789";
const API_TOKEN: &str = "kojid-loop-api-token-9876543210abcd";
const FORWARD_TOKEN: &str = "kojid-loop-forwarding-token-abcdef0";
const BUILDER: &str = "buildvm-a.example.org";

/// The kojid started last (by the test or by the agent's restart command), killed when
/// the test ends.
struct Kojid(PathBuf);

impl Kojid {
    fn kill(&self) {
        let pid = std::fs::read_to_string(&self.0).unwrap();
        let status = std::process::Command::new("kill")
            .arg(pid.trim())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Kojid {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
    }
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    koji_testkit::mounts::run(&["chmod", "+x", path.to_str().unwrap()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kojid_is_restarted_by_its_agent_then_escalated_when_it_keeps_dying() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("bin")).unwrap();
    std::fs::copy("/bin/sleep", d.join("bin/kojid")).unwrap();
    let pid_file = d.join("kojid.pid");
    let log = d.join("restarts.log");
    // The builder's own commands: start kojid (detached, its pid recorded), and tell
    // whether it runs.
    let start_kojid = format!(
        "#!/bin/sh\necho \"$1\" >> '{log}'\nsetsid '{d}/bin/kojid' 100000 > /dev/null 2>&1 < /dev/null &\necho $! > '{pid}'\n",
        log = log.display(),
        d = d.display(),
        pid = pid_file.display()
    );
    write_script(&d.join("restart"), &start_kojid);
    write_script(
        &d.join("is-active"),
        &format!(
            "#!/bin/sh\nfor i in $(seq 50); do kill -0 \"$(cat '{}')\" 2>/dev/null && exit 0; sleep 0.1; done\nexit 1\n",
            pid_file.display()
        ),
    );
    let kojid = Kojid(pid_file.clone());
    // kojid runs when the test begins (not recorded as a restart).
    koji_testkit::mounts::run(&[
        "sh",
        "-c",
        &format!(
            "setsid '{d}/bin/kojid' 100000 > /dev/null 2>&1 < /dev/null & echo $! > '{pid}'",
            d = d.display(),
            pid = pid_file.display()
        ),
    ]);

    // The builder's agent.
    std::fs::write(d.join("forwarding.token"), FORWARD_TOKEN).unwrap();
    let agent_port = free_port();
    std::fs::write(
        d.join("agent.toml"),
        format!(
            "[agent]\ntoken_file = \"{d}/forwarding.token\"\nactions = [\"restart_local_services\"]\n\
             host_name = \"{BUILDER}\"\nstate_dir = \"{d}/agent-state\"\n\n\
             [agent.restart_local_services]\nservices = [\"kojid\"]\n\
             restart_command = [\"{d}/restart\"]\nis_active_command = [\"{d}/is-active\"]\n",
            d = d.display()
        ),
    )
    .unwrap();
    let agent = start_binary(d, "agent", "koji-remediator", "agent.toml", agent_port, &[]);

    // koji-exporter on the builder: who it is, and its services.
    let exporter_port = free_port();
    std::fs::write(
        d.join("exporter.toml"),
        format!(
            "[builder]\nhost_name = \"{BUILDER}\"\n\
             [collectors]\nkoji_db = false\nkoji_hub = false\nkoji_hosts = false\nkoji_tasks = false\n\
             pg_stat_activity = false\nbuilder_health = true\nfilesystems = false\n\
             services = true\nbuilddirs = false\n"
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

    // The central remediator with the example runbook's rule.
    // Koji's real hub, with the builder as an administrator adds it.
    let hub = TestDb::empty("kojid_loop_hub").await.unwrap();
    let koji = KojiHub::start(&hub, &[]).await.expect("Koji's hub");
    koji.koji_admin(&["add-host", BUILDER, "x86_64"])
        .await
        .unwrap();
    let journal = TestDb::empty("kojid_loop_journal").await.unwrap();
    let (notices_url, notices) = koji_e2e::json_sink().await;
    let central = Central {
        webhook_token: WEBHOOK_TOKEN,
        api_token: API_TOKEN,
        journal_url: &journal.url,
        hub_url: &hub.url,
    };
    let (remediator, remediator_port) = start_central_remediator(
        d,
        &central,
        "",
        &format!(
            r#"
[notify]
webhook_url = "{notices_url}"

[[rule]]
name = "kojid-down"
alertname = "KojiBuilderDaemonDown"
action = "restart_local_services"
policy = "auto"
cooldown = "0s"
max_runs_per_hour = 2
params = {{ services = ["kojid"] }}

[forwarding]
token_file = "{d}/forwarding.token"
actions = ["restart_local_services"]
attempts = 1

[forwarding.agents]
"{BUILDER}" = "http://127.0.0.1:{agent_port}"
"#,
            d = d.display()
        ),
    );
    let (alertmanager, am_port) = start_alertmanager(
        d,
        &format!("http://127.0.0.1:{remediator_port}/webhook/alertmanager"),
        &d.join("webhook.token"),
    );
    let (prometheus, prom) = start_prometheus(d, &[("koji-builders", exporter_port)], am_port);
    let all = [&agent, &exporter, &remediator, &alertmanager, &prometheus];
    let client = reqwest::Client::new();
    let kojid_up = |want: &'static str| {
        let client = client.clone();
        let prom = prom.clone();
        move || {
            let client = client.clone();
            let prom = prom.clone();
            async move {
                let body = get_json(
                    &client,
                    &format!(
                        "{prom}/api/v1/query?query=koji_service_up%7Bservice%3D%22kojid%22%7D"
                    ),
                    None,
                )
                .await?;
                (body["data"]["result"][0]["value"][1] == want).then_some(())
            }
        }
    };
    let journal_url = format!("http://127.0.0.1:{remediator_port}/api/v1/journal");
    let ended_runs = || async {
        let runs = get_json(&client, &journal_url, Some(API_TOKEN)).await?;
        let runs = runs.as_array()?.clone();
        Some(
            runs.into_iter()
                .filter(|run| {
                    !matches!(
                        run["state"].as_str(),
                        Some("pending" | "running" | "applying")
                    )
                })
                .collect::<Vec<Value>>(),
        )
    };
    wait_for(
        "Prometheus to see kojid up",
        Duration::from_secs(60),
        &all,
        kojid_up("1"),
    )
    .await;

    for round in 1..=2 {
        kojid.kill();
        let symptom = Instant::now();
        wait_for(
            &format!("restart {round} by the agent"),
            Duration::from_secs(90),
            &all,
            || async {
                let runs = ended_runs().await?;
                (runs.len() == round).then_some(())
            },
        )
        .await;
        let runs = ended_runs().await.unwrap();
        assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
        println!(
            "kojid killed to restarted ({round}): {:.1} s",
            symptom.elapsed().as_secs_f64()
        );
        wait_for(
            "kojid up again",
            Duration::from_secs(60),
            &all,
            kojid_up("1"),
        )
        .await;
        // The alert resolves before the next kill, so the next is a new occurrence.
        wait_for(
            "the alert to resolve",
            Duration::from_secs(60),
            &all,
            || async {
                let firing =
                    koji_e2e::alert_active(&client, &prom, "KojiBuilderDaemonDown").await?;
                (!firing).then_some(())
            },
        )
        .await;
    }
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "kojid\nkojid\n",
        "restarted twice by the agent's own command"
    );

    // A third time within the hour: held and escalated, not restarted.
    kojid.kill();
    wait_for(
        "the third run to be held",
        Duration::from_secs(90),
        &all,
        || async {
            let runs = ended_runs().await?;
            (runs.len() == 3).then_some(())
        },
    )
    .await;
    let runs = ended_runs().await.unwrap();
    assert_eq!(runs[0]["state"], "skipped", "{runs:#?}");
    assert!(
        runs[0]["outcome"]
            .as_str()
            .unwrap()
            .contains("max_runs_per_hour = 2"),
        "{runs:#?}"
    );
    let received = wait_for(
        "the notice to on-call",
        Duration::from_secs(30),
        &all,
        || async {
            let received = notices.lock().unwrap().clone();
            (!received.is_empty()).then_some(received)
        },
    )
    .await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(
        received[0]["text"]
            .as_str()
            .unwrap()
            .contains("keeps being needed and needs a human"),
        "{received:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "kojid\nkojid\n",
        "not restarted a third time"
    );
    // Restarts change nothing in Koji: its history shows no change of the host.
    assert_eq!(
        koji.host_config_changes(BUILDER).await.unwrap(),
        Vec::<String>::new()
    );
    // The journal, replayed through the same runbook: two restarts through the agent and
    // the third held by max_runs_per_hour, exactly as it happened.
    let report = koji_e2e::faithful_replay(d, "30m");
    let fates: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["status"] == "firing" && row["then"] != "duplicate")
        .map(|row| row["would"].as_str().unwrap())
        .collect();
    assert_eq!(
        fates,
        [
            "ran: succeeded",
            "ran: succeeded",
            "held: max_runs_per_hour"
        ],
        "{report:#}"
    );
    drop(kojid);
}
