//! The RPM packages, built for real: packaging/rpm/build.sh makes the source and vendored
//! crate tarballs and runs rpmbuild (Debian's `rpm`) with no network. The packages must
//! hold the binaries, units, example configurations (as %config), alert rules and
//! dashboards in the usual places, and the packaged exporter must run and accept its
//! packaged configuration. Cargo's build folder is kept in the target directory, so later
//! runs rebuild only what changed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use koji_e2e::repo_root;

fn rpm_query(package: &Path, flags: &[&str]) -> Vec<String> {
    let output = Command::new("rpm")
        .args(flags)
        .arg(package)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn rpmbuild_makes_installable_packages_without_network() {
    let top = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let kept = exe.ancestors().nth(3).unwrap().join("rpm-build");
    let started = Instant::now();
    let output = Command::new(repo_root().join("packaging/rpm/build.sh"))
        .env("RPM_TOPDIR", top.path())
        .env("KOJI_RPM_TARGET_DIR", kept.join("target"))
        .env("KOJI_RPM_BUILDDIR", kept.join("BUILD"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("rpmbuild: {:.0} s", started.elapsed().as_secs_f64());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("network namespace of its own"), "{stderr}");
    let packages: Vec<PathBuf> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(PathBuf::from)
        .collect();
    let find = |name: &str| {
        packages
            .iter()
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{name}-0"))
            })
            .unwrap_or_else(|| panic!("no {name} package in {packages:?}"))
            .clone()
    };
    let exporter = find("koji-exporter");
    let remediator = find("koji-remediator");
    let monitoring = find("koji-runbook-monitoring");

    let expected: [(&Path, &[&str]); 3] = [
        (
            &exporter,
            &[
                "/usr/bin/koji-exporter",
                "/usr/lib/systemd/system/koji-exporter.service",
                "/etc/koji-exporter/koji-exporter.toml",
                "/etc/koji-exporter/web-config-exporter.yml",
            ],
        ),
        (
            &remediator,
            &[
                "/usr/bin/koji-remediator",
                "/usr/lib/systemd/system/koji-remediator.service",
                "/usr/lib/systemd/system/koji-remediator-agent.service",
                "/usr/lib/sysusers.d/koji-remediator.conf",
                "/etc/koji-remediator/koji-remediator.toml",
                "/etc/koji-remediator/agent.toml",
                "/etc/koji-remediator/web-config-central.yml",
                "/etc/koji-remediator/web-config-agent.yml",
            ],
        ),
        (
            &monitoring,
            &[
                "/usr/share/koji-runbook/alerts/koji.rules.yml",
                "/usr/share/koji-runbook/alerts/alertmanager.example.yml",
                "/usr/share/koji-runbook/dashboards/koji-builders.json",
                "/usr/share/koji-runbook/dashboards/koji-remediation.json",
            ],
        ),
    ];
    for (package, files) in expected {
        let listed = rpm_query(package, &["-qlp"]);
        let configs = rpm_query(package, &["-qcp"]);
        for file in files {
            assert!(
                listed.iter().any(|l| l == file),
                "{file} not in {package:?}: {listed:#?}"
            );
            if file.starts_with("/etc/") {
                assert!(configs.iter().any(|c| c == file), "{file} is not %config");
            }
        }
    }

    // The three install together into an empty root with rpm itself (scripts off: the root
    // has no shell or user tools), and rpm's database lists them.
    let root = top.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let install = Command::new("rpm")
        .arg("--root")
        .arg(&root)
        .args(["--nodeps", "--noscripts", "-i"])
        .args([&exporter, &remediator, &monitoring])
        .output()
        .unwrap();
    assert!(install.status.success(), "{install:?}");
    let installed = Command::new("rpm")
        .arg("--root")
        .arg(&root)
        .args(["-qa", "--qf", "%{NAME}\n"])
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&installed.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "koji-exporter",
            "koji-remediator",
            "koji-runbook-monitoring"
        ]
    );
    assert!(root
        .join("usr/lib/systemd/system/koji-remediator-agent.service")
        .exists());

    // The packaged exporter runs, and accepts its packaged configuration.
    let unpacked = top.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "rpm2cpio '{}' | cpio -idm --quiet",
            exporter.display()
        ))
        .current_dir(&unpacked)
        .status()
        .unwrap();
    assert!(status.success());
    let binary = unpacked.join("usr/bin/koji-exporter");
    let output = Command::new(&binary)
        .args(["--check-config", "--config.file"])
        .arg(unpacked.join("etc/koji-exporter/koji-exporter.toml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("configuration ok"));
}
