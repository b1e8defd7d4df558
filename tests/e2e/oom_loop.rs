//! A builder's first OOM of the day, end to end, with every real part: Koji's real hub
//! (`../shared/koji-hub`) holding the builder, which checks in through `host.updateHost`
//! as kojid does; the builder's /proc (a fixture whose `oom_kill` count the test raises);
//! koji-exporter reading it; Prometheus evaluating the real `KojiBuilderFirstOOMToday`
//! (its 30-minute window made 15 s so that it resolves within the test); Alertmanager;
//! the central koji-remediator with the example runbook's rule (automatic here); and the
//! builder's agent, whose reboot command plays the machine: kojid says it stops, the
//! counter starts again at 0 as after a boot, and kojid checks in again.
//!
//! The host is drained (disabled by the remediator's Koji user), rebooted once, enabled
//! again once it checks in, and the alert resolves; `koji list-history` shows exactly the
//! two changes the journal says were made, and the repeated-OOM alert never fires.

use std::path::Path;
use std::time::{Duration, Instant};

use koji_e2e::{
    free_port, get_json, start_alertmanager, start_binary, start_central_remediator,
    start_prometheus_with_rewrites, wait_for, Central,
};
use koji_testkit::{KojiHub, TestDb};
use serde_json::json;

const WEBHOOK_TOKEN: &str = "oom-loop-webhook-token-0123456789ab";
const API_TOKEN: &str = "oom-loop-api-token-9876543210abcdef";
const FORWARD_TOKEN: &str = "oom-loop-forwarding-token-abcdef012";
const HOST: &str = "buildvm-x86-01.example.org";
const PASSWORD: &str = "builder-password";
const USER: &str = "koji-remediator";

/// Writes the fixture's vmstat with `kills` OOM kills, as the kernel counts them.
fn write_oom_kills(proc: &Path, kills: u64) {
    let text = std::fs::read_to_string(proc.join("vmstat")).unwrap();
    let text: String = text
        .lines()
        .map(|line| {
            if line.starts_with("oom_kill ") {
                format!("oom_kill {kills}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let staged = proc.join("vmstat.new");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(staged, proc.join("vmstat")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_oom_drains_reboots_and_enables_the_builder_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hub_db = TestDb::empty("oom_loop_hub").await.unwrap();
    let hub = KojiHub::start(&hub_db, &[]).await.expect("Koji's hub");
    hub.koji_admin(&["add-host", HOST, "x86_64"]).await.unwrap();
    hub.set_password(HOST, PASSWORD).await.unwrap();
    hub.check_in(HOST, PASSWORD).await.unwrap();
    hub.koji_admin(&["add-user", USER]).await.unwrap();
    hub.koji_admin(&["grant-permission", "host", USER])
        .await
        .unwrap();
    let journal = TestDb::empty("oom_loop_journal").await.unwrap();

    // The builder's /proc.
    let proc = koji_e2e::builder_procfs(d);
    write_oom_kills(&proc, 7);

    // The builder's agent: its reboot command records the call, then plays the machine,
    // staying down (as a real reboot does for minutes) until the test has seen the drain
    // notice it down.
    let go_up = d.join("go-up");
    let reboots = hub.write_rebooting_agent(
        d,
        HOST,
        PASSWORD,
        FORWARD_TOKEN,
        &format!(
            "sed -i 's/^oom_kill .*/oom_kill 0/' '{}'\nwhile [ ! -e '{}' ]; do sleep 0.1; done",
            proc.join("vmstat").display(),
            go_up.display()
        ),
    );
    std::fs::write(d.join("forwarding.token"), FORWARD_TOKEN).unwrap();
    let agent_port = free_port();
    let agent = start_binary(d, "agent", "koji-remediator", "agent.toml", agent_port, &[]);

    // koji-exporter on the builder.
    let (exporter, exporter_port) = koji_e2e::start_builder_exporter(d, &proc, HOST);

    // The central remediator with the example runbook's rule, automatic here.
    let central = Central {
        webhook_token: WEBHOOK_TOKEN,
        api_token: API_TOKEN,
        journal_url: &journal.url,
        hub_url: &hub_db.url,
    };
    let (remediator, remediator_port) = start_central_remediator(
        d,
        &central,
        "",
        &format!(
            r#"koji_user = "{USER}"

[[rule]]
name = "first-oom-on-builder"
alertname = "KojiBuilderFirstOOMToday"
action = "drain_and_reboot"
policy = "auto"
cooldown = "1d"
params = {{ drain_timeout = "60s", down_timeout = "30s", silent_for = "5m", checkin_timeout = "30s", poll_interval = "500ms" }}

[forwarding]
token_file = "{d}/forwarding.token"
actions = []
attempts = 1

[forwarding.agents]
"{HOST}" = "http://127.0.0.1:{agent_port}"
"#,
            d = d.display()
        ),
    );
    let (alertmanager, am_port) = start_alertmanager(
        d,
        &format!("http://127.0.0.1:{remediator_port}/webhook/alertmanager"),
        &d.join("webhook.token"),
    );
    let (prometheus, prom) = start_prometheus_with_rewrites(
        d,
        &[("koji-builders", exporter_port)],
        am_port,
        &[
            (
                "increase(koji_oom_kills_total[30m])",
                "increase(koji_oom_kills_total[15s])",
            ),
            (
                "increase(koji_oom_kills_total[1d] offset 30m)",
                "increase(koji_oom_kills_total[1h] offset 15s)",
            ),
        ],
    );
    let all = [&agent, &exporter, &remediator, &alertmanager, &prometheus];
    let client = reqwest::Client::new();
    let query = |expr: &'static str| {
        let client = client.clone();
        let prom = prom.clone();
        async move {
            let url = reqwest::Url::parse_with_params(
                &format!("{prom}/api/v1/query"),
                &[("query", expr)],
            )
            .unwrap();
            get_json(&client, url.as_str(), None).await
        }
    };
    wait_for(
        "Prometheus to have 20 s of the builder's OOM count",
        Duration::from_secs(60),
        &all,
        || async {
            let body = query("count_over_time(koji_oom_kills_total[20s]) >= 15").await?;
            (!body["data"]["result"].as_array()?.is_empty()).then_some(())
        },
    )
    .await;

    // The symptom: one OOM kill.
    write_oom_kills(&proc, 8);
    let symptom = Instant::now();
    let journal_url = format!("http://127.0.0.1:{remediator_port}/api/v1/journal");
    let run = wait_for(
        "the drain to end",
        Duration::from_secs(120),
        &all,
        || async {
            let runs = get_json(&client, &journal_url, Some(API_TOKEN)).await?;
            let runs = runs.as_array()?;
            if runs
                .iter()
                .any(|run| run["progress"]["seen_down_at"].is_number())
            {
                std::fs::write(&go_up, "").unwrap();
            }
            runs.iter()
                .find(|run| {
                    !matches!(
                        run["state"].as_str(),
                        Some("pending" | "running" | "applying")
                    )
                })
                .cloned()
        },
    )
    .await;
    println!(
        "OOM to the builder back in service: {:.1} s",
        symptom.elapsed().as_secs_f64()
    );
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(run["action"], "drain_and_reboot", "{run:#}");
    assert_eq!(std::fs::read_to_string(&reboots).unwrap(), "reboot\n");
    let info = hub.koji_anonymous(&["hostinfo", HOST]).await.unwrap();
    assert!(info.contains("Enabled: yes"), "{info}");

    // The alert resolves; the repeated-OOM alert never fired (the reboot's counter reset
    // is no kill); nothing else is done.
    wait_for(
        "KojiBuilderFirstOOMToday to resolve",
        Duration::from_secs(60),
        &all,
        || async {
            let firing = koji_e2e::alert_active(&client, &prom, "KojiBuilderFirstOOMToday").await?;
            (!firing).then_some(())
        },
    )
    .await;
    let repeated = query("max_over_time(ALERTS{alertname=\"KojiBuilderOOMKills\"}[10m])")
        .await
        .unwrap();
    assert_eq!(repeated["data"]["result"], json!([]), "{repeated:#}");
    let runs = get_json(&client, &journal_url, Some(API_TOKEN))
        .await
        .unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs:#}");
    assert_eq!(
        hub.host_config_changes(HOST).await.unwrap(),
        [
            format!("{USER}: enabled: True -> False"),
            format!("{USER}: enabled: False -> True"),
        ],
        "Koji's history shows exactly the journal's drain: disabled and enabled by {USER}"
    );
}
