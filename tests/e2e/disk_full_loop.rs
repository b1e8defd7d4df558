//! The runbook's "disk space on builders" failure, end to end: a builder's build directory
//! (a tmpfs) is nearly full of old mock chroots; koji-exporter on the builder reports it,
//! Prometheus fires `KojiBuilderDiskFull` (real rule, `for:` shortened), Alertmanager posts
//! to the central koji-remediator, which forwards the cleanup to the agent on the builder;
//! the agent stops kojid, deletes the oldest entries largest first until 25% is free,
//! starts kojid again; the alert resolves. Asserted on the file system, the service calls,
//! the journal and Prometheus.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use koji_e2e::{
    alert_active, free_port, start_alertmanager, start_binary, start_prometheus, wait_for,
};
use koji_testkit::mounts::{run, TestMount};
use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion, TestDb};
use serde_json::Value;

const HOST: &str = "buildvm-x86-07.example.org";

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_builder_disk_is_cleaned_by_its_agent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The builder's disk: 64 MiB, 58 MiB used by three old chroots and a current build.
    let mock = d.join("mock");
    std::fs::create_dir_all(&mock).unwrap();
    run(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=64m",
        "koji-e2e-builder",
        mock.to_str().unwrap(),
    ]);
    let _mounted = TestMount::adopt(&mock);
    for (name, mib) in [
        ("f39-build-11-1", 18),
        ("f39-build-12-1", 18),
        ("f39-build-13-1", 18),
        ("f40-build-14-1", 4),
    ] {
        std::fs::create_dir_all(mock.join(name).join("root")).unwrap();
        std::fs::write(mock.join(name).join("root/blob"), vec![7u8; mib << 20]).unwrap();
        if name.starts_with("f39") {
            run(&[
                "find",
                mock.join(name).to_str().unwrap(),
                "-exec",
                "touch",
                "-h",
                "-d",
                "10 days ago",
                "{}",
                "+",
            ]);
        }
    }
    // kojid on the builder, as scripts that record being stopped and started.
    std::fs::create_dir_all(d.join("svc-state")).unwrap();
    write(&d.join("svc-state/kojid"), "");
    for (name, body) in [
        (
            "is-active",
            format!("test -e {}/svc-state/\"$1\"", d.display()),
        ),
        (
            "stop",
            format!(
                "echo \"stop $1\" >> {0}/svc.log; rm -f {0}/svc-state/\"$1\"",
                d.display()
            ),
        ),
        (
            "start",
            format!(
                "echo \"start $1\" >> {0}/svc.log; touch {0}/svc-state/\"$1\"",
                d.display()
            ),
        ),
    ] {
        write(&d.join(name), &format!("#!/bin/sh\n{body}\n"));
        run(&["chmod", "+x", d.join(name).to_str().unwrap()]);
    }

    // koji-exporter on the builder.
    let exporter_port = free_port();
    write(
        &d.join("exporter.toml"),
        &format!(
            "[builder]\nhost_name = \"{HOST}\"\n[builddirs]\nroots = [\"{m}\"]\ninterval = \"2s\"\n\
             [[filesystems.paths]]\npath = \"{m}\"\nrole = \"local\"\n",
            m = mock.display()
        ),
    );
    let exporter = start_binary(
        d,
        "koji-exporter",
        "koji-exporter",
        "exporter.toml",
        exporter_port,
        &[
            "--collector.disable-defaults",
            "--collector.filesystems",
            "--collector.builder_health",
            "--collector.builddirs",
        ],
    );

    // The agent on the builder, and the central remediator forwarding cleanups to it.
    for (file, token) in [
        ("webhook.token", "e2e-webhook-token-0123456789abcdef"),
        ("api.token", "e2e-api-token-0123456789abcdefxyz"),
        ("forward.token", "e2e-forward-token-0123456789abcdef"),
    ] {
        write(&d.join(file), token);
    }
    let agent_port = free_port();
    write(
        &d.join("agent.toml"),
        &format!(
            "[agent]\ntoken_file = \"{fwd}\"\nactions = [\"clean_build_dirs\"]\nhost_name = \"{HOST}\"\nstate_dir = \"{dd}/agent-state\"\n\n\
             [agent.clean_build_dirs]\nroots = [\"{mock}\"]\nservices = [\"kojid\"]\n\
             is_active_command = [\"{dd}/is-active\"]\nstop_command = [\"{dd}/stop\"]\nstart_command = [\"{dd}/start\"]\n",
            fwd = d.join("forward.token").display(),
            dd = d.display(),
            mock = mock.display(),
        ),
    );
    let agent = start_binary(d, "agent", "koji-remediator", "agent.toml", agent_port, &[]);
    let hub = TestDb::koji("e2e_disk_hub", KojiVersion::V1_33)
        .await
        .unwrap();
    add_host(&hub.client, KojiVersion::V1_33, &HostSpec::new(HOST))
        .await
        .unwrap();
    let journal = TestDb::empty("e2e_disk_journal").await.unwrap();
    let central_port = free_port();
    write(
        &d.join("central.toml"),
        &format!(
            r#"
[server]
webhook_token_file = "{d}/webhook.token"
api_token_file = "{d}/api.token"
[journal]
url = "{journal}"
[hub]
url = "{hub}"
[[rule]]
name = "builder-disk-full"
alertname = "KojiBuilderDiskFull"
action = "clean_build_dirs"
policy = "auto"
params = {{ target_free_percent = 25 }}
[forwarding]
token_file = "{d}/forward.token"
actions = ["clean_build_dirs"]
[forwarding.agents]
"{HOST}" = "http://127.0.0.1:{agent_port}"
"#,
            d = d.display(),
            journal = journal.url,
            hub = hub.url,
        ),
    );
    let central = start_binary(
        d,
        "central",
        "koji-remediator",
        "central.toml",
        central_port,
        &[],
    );
    let (alertmanager, am_port) = start_alertmanager(
        d,
        &format!("http://127.0.0.1:{central_port}/webhook/alertmanager"),
        &d.join("webhook.token"),
    );
    let (prometheus, prom) = start_prometheus(d, &[("koji-builders", exporter_port)], am_port);
    let all = [&exporter, &agent, &central, &alertmanager, &prometheus];
    let client = reqwest::Client::new();
    let started = Instant::now();

    let journal_url = format!("http://127.0.0.1:{central_port}/api/v1/journal");
    let run = wait_for(
        "the agent's cleanup",
        Duration::from_secs(90),
        &all,
        || async {
            let runs: Value = client
                .get(&journal_url)
                .bearer_auth("e2e-api-token-0123456789abcdefxyz")
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            runs.as_array()?
                .iter()
                .find(|run| {
                    !["pending", "running", "applying"]
                        .iter()
                        .any(|s| run["state"] == *s)
                })
                .cloned()
        },
    )
    .await;
    println!(
        "disk full to cleaned: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(run["state"], "succeeded", "{run}");
    assert!(
        run["outcome"]
            .as_str()
            .unwrap()
            .starts_with(&format!("agent http://127.0.0.1:{agent_port}")),
        "{run}"
    );
    let left: Vec<String> = std::fs::read_dir(&mock)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.contains(&"f40-build-14-1".to_string()),
        "the current build stays: {left:?}"
    );
    assert_eq!(
        left.len(),
        3,
        "one old chroot was enough for 25% free: {left:?}"
    );
    let stat = free_share(&mock);
    assert!(stat >= 0.25, "free share {stat}");
    assert_eq!(
        std::fs::read_to_string(d.join("svc.log")).unwrap(),
        "stop kojid\nstart kojid\n"
    );

    wait_for(
        "the alert to resolve",
        Duration::from_secs(60),
        &all,
        || async { (!alert_active(&client, &prom, "KojiBuilderDiskFull").await?).then_some(()) },
    )
    .await;
    println!(
        "disk full to alert resolved: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The free share of the file system at `path`, from `df`.
fn free_share(path: &Path) -> f64 {
    let output = Command::new("df")
        .args(["--output=avail,size", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let numbers: Vec<f64> = text
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    numbers[0] / numbers[1]
}
