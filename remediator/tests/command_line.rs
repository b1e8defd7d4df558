//! koji-remediator's command line: --help, --version, and refusing to run without a config.

use std::process::Command;

#[test]
fn version_and_help() {
    let binary = env!("CARGO_BIN_EXE_koji-remediator");
    let output = Command::new(binary).arg("--version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("koji-remediator {}", env!("CARGO_PKG_VERSION"))
    );
    let output = Command::new(binary).arg("--help").output().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("--config.file"));
    // Without --config.file it refuses to start.
    let output = Command::new(binary).output().unwrap();
    assert!(!output.status.success());
}

/// The remediator takes commands that delete files: plain HTTP beyond loopback is refused
/// unless the configuration asks for it, before anything starts.
#[test]
fn plain_http_beyond_loopback_must_be_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("agent.token"), "agent-token-0123456789abcdef").unwrap();
    let agent = |extra: &str| {
        format!(
            "[server]\nlisten_address = \"0.0.0.0:0\"\n{extra}\n[agent]\ntoken_file = \"{}\"\nactions = [\"clean_build_dirs\"]\nhost_name = \"b\"\n[agent.clean_build_dirs]\nroots = [\"/var/lib/mock\"]\n",
            d.join("agent.token").display()
        )
    };
    let check = |text: String| {
        std::fs::write(d.join("agent.toml"), text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_koji-remediator"))
            .args(["--check-config", "--config.file"])
            .arg(d.join("agent.toml"))
            .output()
            .unwrap()
    };
    let refused = check(agent(""));
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("server.allow_plain_http"), "{stderr}");
    let allowed = check(agent("allow_plain_http = true"));
    assert!(allowed.status.success(), "{allowed:?}");
}
