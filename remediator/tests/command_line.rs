//! koji-remediator's command line: --help, --version, refusing to run without a config, and
//! `credentials`, whose files are exactly those the example configurations name.

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

/// Logs that go to a file or the journal carry no colour escape codes.
#[test]
fn logs_off_a_terminal_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("agent.token"), "agent-token-for-log-test-0123456789").unwrap();
    std::fs::write(
        d.join("agent.toml"),
        format!(
            "[agent]\ntoken_file = \"{d}/agent.token\"\nactions = [\"restart_local_services\"]\nhost_name = \"h\"\nstate_dir = \"{d}/state\"\n[agent.restart_local_services]\nservices = [\"x\"]\n",
            d = d.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(d.join("stderr.log")).unwrap();
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_koji-remediator"))
        .args(["--config.file", d.join("agent.toml").to_str().unwrap()])
        .args(["--web.listen-address", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let text = loop {
        let text = std::fs::read_to_string(d.join("stderr.log")).unwrap();
        if text.contains("koji-remediator listening") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "no log line: {text}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(!text.contains('\u{1b}'), "escape codes in {text:?}");
}

/// `koji-remediator credentials` makes every file the three example configurations name
/// under /etc/koji-remediator (with the example web configurations copied beside them, as
/// its report says), so each passes `--check-config`; before it ran, `--check-config` names
/// the missing file and this command.
#[test]
fn credentials_make_what_the_examples_name() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = tempfile::tempdir().unwrap();
    let site = root.path().join("etc/koji-remediator");
    let binary = env!("CARGO_BIN_EXE_koji-remediator");
    let install = |name: &str| {
        let text = std::fs::read_to_string(repo.join("examples").join(name)).unwrap();
        let path = root.path().join(name);
        std::fs::write(
            &path,
            text.replace("\"/etc/", &format!("\"{}/etc/", root.path().display())),
        )
        .unwrap();
        path
    };
    let check = |config: &std::path::Path| {
        Command::new(binary)
            .args(["--check-config", "--config.file"])
            .arg(config)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap()
    };
    let central = install("koji-remediator.toml");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::copy(
        repo.join("examples/web-config-central.yml"),
        site.join("web-config-central.yml"),
    )
    .unwrap();
    let before = check(&central);
    assert!(!before.status.success());
    let said = String::from_utf8_lossy(&before.stderr);
    assert!(
        said.contains(&format!(
            "cannot read {}/tls/remediator.crt: No such file",
            site.display()
        )) && said.contains(&format!(
            "`koji-remediator credentials --dir {} --throwaway-ca` makes one",
            site.display()
        )),
        "{said}"
    );

    let made = Command::new(binary)
        .args(["credentials", "--dir"])
        .arg(&site)
        .args(["--oncall", "alice", "--throwaway-ca"])
        .args(["--central-name", "central.example.org"])
        .args(["--agent-name", "buildvm-x86-01.example.org"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let report = String::from_utf8_lossy(&made.stdout);
    assert!(report.contains("web-config-agent.yml"), "{report}");
    std::fs::copy(
        repo.join("examples/web-config-agent.yml"),
        site.join("web-config-agent.yml"),
    )
    .unwrap();
    for example in [
        "koji-remediator.toml",
        "koji-remediator-agent.toml",
        "koji-remediator-hub-agent.toml",
    ] {
        let output = check(&install(example));
        assert!(
            output.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Run again: everything is kept, nothing overwritten.
    let token = std::fs::read_to_string(site.join("webhook.token")).unwrap();
    let again = Command::new(binary)
        .args(["credentials", "--dir"])
        .arg(&site)
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stdout).contains("wrote"));
    assert_eq!(
        std::fs::read_to_string(site.join("webhook.token")).unwrap(),
        token
    );
}
