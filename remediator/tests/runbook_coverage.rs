//! The alert rules, their promtool unit tests, the Alertmanager example and the example
//! runbook agree: every alert in `alerts/koji.rules.yml` has a runbook rule naming the fix
//! its `action` label announces, and all of them pass their own tools' checks.

use std::path::{Path, PathBuf};
use std::process::Command;

use koji_remediator::config::Config;
use koji_testkit::examples::install_example;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(repo("alerts"))
        .output()
        .unwrap_or_else(|error| panic!("{program} (tools/install-test-deps installs it): {error}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{text}"
    );
    text
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let checked = run("promtool", &["check", "rules", "koji.rules.yml"]);
    assert!(checked.contains("SUCCESS: 20 rules found"), "{checked}");
    let tested = run("promtool", &["test", "rules", "koji.rules.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn alertmanager_example_passes_amtool() {
    run("amtool", &["check-config", "alertmanager.example.yml"]);
}

/// `(alertname, action label)` of every alert rule, read line by line (the file's own
/// layout: `- alert:` then, below it, `action:`).
fn alerts() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo("alerts/koji.rules.yml")).unwrap();
    let mut found: Vec<(String, String)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert: ") {
            found.push((name.to_string(), String::new()));
        } else if let Some(action) = line.strip_prefix("action: ") {
            found.last_mut().expect("action below an alert").1 = action.to_string();
        }
    }
    found
}

#[test]
fn every_alert_has_a_runbook_rule_with_its_fix() {
    let config = Config::load(&repo("examples/koji-remediator.toml")).unwrap();
    let alerts = alerts();
    assert_eq!(alerts.len(), 20);
    for (alertname, action) in &alerts {
        let rule = config
            .rules
            .iter()
            .find(|rule| &rule.alertname == alertname)
            .unwrap_or_else(|| panic!("no runbook rule for {alertname}"));
        let expected = match action.as_str() {
            "none" => "escalate",
            other => other,
        };
        assert_eq!(rule.action.name(), expected, "{alertname}");
    }
}

/// Runs `--check-config` on an example installed with every file it names (tokens, TLS).
fn check_installed_example(name: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let installed = install_example(&repo(""), name, dir.path());
    Command::new(env!("CARGO_BIN_EXE_koji-remediator"))
        .args(["--check-config", "--config.file"])
        .arg(&installed.config)
        .output()
        .unwrap()
}

#[test]
fn the_binary_checks_the_example_runbook() {
    let output = check_installed_example("koji-remediator.toml");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("20 rule(s)"), "{stdout}");
    assert!(
        stdout.contains("KojiBuilderOverloaded -> lower_capacity (auto)"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(repo("examples/koji-remediator.toml"))
        .unwrap()
        .replace("action = \"lower_capacity\"", "action = \"lower_capacty\"");
    std::fs::write(&bad, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_koji-remediator"))
        .args(["--check-config", "--config.file"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("lower_capacty"),
        "{stderr}"
    );
}

#[test]
fn the_agent_example_is_an_agent_only_config() {
    let config = Config::load(&repo("examples/koji-remediator-agent.toml")).unwrap();
    let agent = config.agent.as_ref().expect("[agent]");
    assert_eq!(agent.host_name, "buildvm-x86-01.example.org");
    assert!(config.rules.is_empty() && config.journal.is_none() && config.hub.is_none());
    let output = check_installed_example("koji-remediator-agent.toml");
    assert!(output.status.success(), "{output:?}");
    // The check says what the agent may touch and run.
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("agent for Koji host buildvm-x86-01.example.org")
            && said.contains(
                "clean_build_dirs: may delete old top-level entries of /var/lib/mock, /mnt/build"
            )
            && said.contains("stops kojid with `systemctl stop`")
            && said.contains("restart_local_services: may restart kojid with `systemctl restart`")
            && said.contains(
                "reboot_host: may reboot this machine with `systemctl reboot`, 5s after answering"
            ),
        "{said}"
    );
    // Without the files it names, the check fails and names the setting.
    let output = Command::new(env!("CARGO_BIN_EXE_koji-remediator"))
        .args(["--check-config", "--config.file"])
        .arg(repo("examples/koji-remediator-agent.toml"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("web-config-agent.yml"), "{stderr}");
    // The central example forwards the cleanup and kojid's restart to such agents.
    let central = Config::load(&repo("examples/koji-remediator.toml")).unwrap();
    let forwarding = central.forwarding.expect("[forwarding]");
    let forwarded: Vec<&str> = forwarding.actions.iter().map(|a| a.name()).collect();
    assert_eq!(forwarded, ["clean_build_dirs", "restart_local_services"]);
    // The agent's roots are exactly what its systemd unit lets it write.
    let unit =
        std::fs::read_to_string(repo("packaging/systemd/koji-remediator-agent.service")).unwrap();
    let writable: Vec<String> = unit
        .lines()
        .find_map(|line| line.strip_prefix("ReadWritePaths="))
        .unwrap()
        .split_whitespace()
        .map(|path| path.trim_start_matches('-').to_string())
        .collect();
    let roots: Vec<String> = agent
        .clean_build_dirs
        .as_ref()
        .expect("[agent.clean_build_dirs]")
        .roots
        .iter()
        .map(|root| root.display().to_string())
        .collect();
    assert_eq!(roots, writable);
    assert!(unit.contains("StateDirectory=koji-remediator"));
    assert_eq!(
        agent.state_dir.display().to_string(),
        "/var/lib/koji-remediator"
    );
}

#[test]
fn the_hub_agent_example_runs_only_the_restart_step() {
    let config = Config::load(&repo("examples/koji-remediator-hub-agent.toml")).unwrap();
    let agent = config.agent.as_ref().expect("[agent]");
    let actions: Vec<&str> = agent.actions.iter().map(|a| a.name()).collect();
    assert_eq!(actions, ["restart_local_services"]);
    assert!(config.rules.is_empty() && config.journal.is_none() && config.hub.is_none());
    let output = check_installed_example("koji-remediator-hub-agent.toml");
    assert!(output.status.success(), "{output:?}");
}
