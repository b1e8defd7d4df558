//! The systemd units in packaging/systemd: `systemd-analyze verify` passes on each (with
//! ExecStart pointed at the binaries this build made, since verify checks the executable
//! exists), and `systemd-analyze security --offline` rates each within its budget: the
//! exporter and the central remediator run without any capability, the agent with exactly
//! the three its cleanup needs. The exposure levels are printed for the README.

use std::path::Path;
use std::process::Command;

use koji_e2e::{repo_root, workspace_binary};

/// Each unit, the binary it runs, and the highest exposure level accepted.
const UNITS: [(&str, &str, f64); 3] = [
    ("koji-exporter.service", "koji-exporter", 2.0),
    ("koji-remediator.service", "koji-remediator", 2.0),
    ("koji-remediator-agent.service", "koji-remediator", 3.0),
];

fn setting<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn every_unit_verifies_and_stays_within_its_exposure_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut copies = Vec::new();
    for (name, binary, _) in UNITS {
        let text =
            std::fs::read_to_string(repo_root().join("packaging/systemd").join(name)).unwrap();
        let built = workspace_binary(binary);
        let copy = dir.path().join(name);
        std::fs::write(
            &copy,
            text.replace(&format!("/usr/bin/{binary}"), built.to_str().unwrap()),
        )
        .unwrap();
        copies.push(copy);
    }
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&copies)
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    for ((name, _, budget), copy) in UNITS.iter().zip(&copies) {
        let level = exposure(copy);
        println!("{name}: exposure level {level:.1}");
        assert!(level <= *budget, "{name}: exposure {level} above {budget}");
    }
}

/// `systemd-analyze security --offline`'s overall exposure level.
fn exposure(unit: &Path) -> f64 {
    let output = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level:\n{text}"));
    line.rsplit(": ")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable: {line}"))
}

#[test]
fn privileges_are_exactly_what_each_role_needs() {
    let read = |name: &str| {
        std::fs::read_to_string(repo_root().join("packaging/systemd").join(name)).unwrap()
    };
    for name in ["koji-exporter.service", "koji-remediator.service"] {
        let unit = read(name);
        assert_eq!(setting(&unit, "CapabilityBoundingSet"), [""], "{name}");
        assert_eq!(setting(&unit, "NoNewPrivileges"), ["yes"], "{name}");
        assert_eq!(setting(&unit, "ProtectSystem"), ["strict"], "{name}");
        assert!(
            setting(&unit, "ReadWritePaths").is_empty(),
            "{name} writes nothing"
        );
    }
    assert_eq!(
        setting(&read("koji-exporter.service"), "DynamicUser"),
        ["yes"]
    );
    assert_eq!(
        setting(&read("koji-remediator.service"), "User"),
        ["koji-remediator"]
    );
    let agent = read("koji-remediator-agent.service");
    assert_eq!(
        setting(&agent, "CapabilityBoundingSet"),
        ["CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER"]
    );
    assert_eq!(
        setting(&agent, "ReadWritePaths"),
        ["-/var/lib/mock -/mnt/build"]
    );
    assert_eq!(setting(&agent, "ProtectSystem"), ["strict"]);
    for (unit, _, _) in UNITS {
        assert_eq!(
            setting(&read(unit), "LimitNOFILE"),
            ["16384"],
            "{unit}: room for the connection cap"
        );
    }
}
