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
