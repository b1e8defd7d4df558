//! `clean_build_dirs` on real file systems (the test runs as root and mounts them): old
//! entries of known sizes on a tmpfs go largest first until the target is met; a chroot
//! with a live bind mount is refused and its source untouched; a symlink to the outside is
//! removed as a link; an entry the hub still builds in stays; services are stopped and
//! started through recording scripts, the start also when deletion fails midway; alerts
//! about another host, and paths in labels, move nothing.

mod support;

use std::path::{Path, PathBuf};

use koji_testkit::mounts::{run, TestMount};
use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion};
use support::{local_agent, payload, Remediator};

const HOST: &str = "buildvm-x86-01.example.org";
const MIB: u64 = 1 << 20;

/// A build-dir entry of `mib` MiB whose every file and directory is `days` old.
fn entry(root: &Path, name: &str, mib: usize, days: u32) {
    let dir = root.join(name).join("root/var/tmp");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("blob"), vec![1u8; mib << 20]).unwrap();
    age(&root.join(name), days);
}

/// Sets every modification time in the tree at `path` (this file system only, links not
/// followed) to `days` ago.
fn age(path: &Path, days: u32) {
    if days > 0 {
        let when = format!("{days} days ago");
        run(&[
            "find",
            path.to_str().unwrap(),
            "-xdev",
            "-exec",
            "touch",
            "-h",
            "-d",
            &when,
            "{}",
            "+",
        ]);
    }
}

/// Service commands that keep state in files and record every call.
struct Services {
    dir: PathBuf,
}

impl Services {
    fn new(dir: &Path, running: &[&str], on_stop: &str) -> Services {
        let state = dir.join("state");
        std::fs::create_dir_all(&state).unwrap();
        for service in running {
            std::fs::write(state.join(service), "").unwrap();
        }
        let script = |name: &str, body: &str| {
            let path = dir.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            run(&["chmod", "+x", path.to_str().unwrap()]);
        };
        let log = dir.join("calls.log");
        script("is-active", &format!("test -e {}/\"$1\"", state.display()));
        script(
            "stop",
            &format!(
                "echo \"stop $1\" >> {}\nrm -f {}/\"$1\"\n{on_stop}",
                log.display(),
                state.display()
            ),
        );
        script(
            "start",
            &format!(
                "echo \"start $1\" >> {}\ntouch {}/\"$1\"",
                log.display(),
                state.display()
            ),
        );
        Services {
            dir: dir.to_path_buf(),
        }
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.join("calls.log")).unwrap_or_default()
    }

    fn running(&self, service: &str) -> bool {
        self.dir.join("state").join(service).exists()
    }

    fn params(&self) -> String {
        let d = self.dir.display();
        format!(
            "stop_command = [\"{d}/stop\"]\nstart_command = [\"{d}/start\"]\nis_active_command = [\"{d}/is-active\"]\nservices = [\"kojid\", \"plague-builder\"]\n"
        )
    }
}

fn rules(root: &Path, services: &Services, target: f64) -> String {
    format!(
        r#"
[[rule]]
name = "builder-disk-full"
alertname = "KojiBuilderDiskFull"
action = "clean_build_dirs"
policy = "auto"
cooldown = "0s"
params = {{ target_free_percent = {target} }}
{}"#,
        local_agent(
            &services.dir,
            &format!(
                "roots = [\"{}\"]\nmax_target_free_percent = 95\n{}",
                root.display(),
                services.params()
            )
        )
    )
}

fn alert(host: &str, starts_at: &str) -> String {
    let labels = [
        ("alertname", "KojiBuilderDiskFull"),
        ("host", host),
        ("mountpoint", "/etc"),
        ("root", "../../../etc"),
    ];
    payload(false, &labels, "dddd0000dddd0000", starts_at)
}

fn free(path: &Path) -> u64 {
    let stat = rustix::fs::statvfs(path).unwrap();
    stat.f_bavail * stat.f_frsize
}

#[tokio::test]
async fn old_entries_go_largest_first_until_the_target_is_met() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mock");
    let _tmpfs = TestMount::tmpfs(&root, "size=64m", "koji-clean-test");
    entry(&root, "f39-build-101-1", 16, 10);
    entry(&root, "f39-build-102-1", 8, 10);
    entry(&root, "f39-build-103-1", 4, 10);
    entry(&root, "f40-build-104-1", 16, 0);
    // A symlink to the outside inside an old entry: removed as a link, the outside intact.
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("precious"), "keep me").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("f39-build-101-1/root/escape")).unwrap();
    age(&root.join("f39-build-101-1"), 10);
    let services = Services::new(&dir.path().join("svc"), &["kojid"], "");

    // 60% of 64 MiB is 38.4 MiB: with ~20 MiB free, the 16 and 8 MiB entries must go, not
    // the 4 MiB one, and never the new build.
    let remediator = Remediator::start(KojiVersion::V1_33, &rules(&root, &services, 60.0)).await;
    let before = free(&root);
    let (status, body) = remediator.post(&alert(HOST, "2026-11-28T16:00:00Z")).await;
    assert_eq!(status, 200, "{body}");
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert!(!root.join("f39-build-101-1").exists());
    assert!(!root.join("f39-build-102-1").exists());
    assert!(
        root.join("f39-build-103-1").exists(),
        "target met before the smallest"
    );
    assert!(
        root.join("f40-build-104-1").exists(),
        "recent build untouched"
    );
    assert!(
        free(&root) >= before + 24 * MIB,
        "statvfs shows the space freed"
    );
    assert!(free(&root) as f64 >= 0.6 * (64 * MIB) as f64);
    assert_eq!(
        std::fs::read_to_string(outside.join("precious")).unwrap(),
        "keep me"
    );
    // kojid ran: stopped, then started; plague-builder was not running: left alone.
    assert_eq!(services.calls(), "stop kojid\nstart kojid\n");
    assert!(services.running("kojid"));
    assert!(!services.running("plague-builder"));
    // The paths in the alert's labels played no part.
    let plan = runs[0]["plan"].as_str().unwrap();
    assert!(!plan.contains("/etc"), "{plan}");
}

#[tokio::test]
async fn a_chroot_with_a_live_mount_is_refused_and_its_source_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mock");
    let _tmpfs = TestMount::tmpfs(&root, "size=64m", "koji-clean-test");
    entry(&root, "f39-build-201-1", 16, 10);
    entry(&root, "f39-build-202-1", 4, 10);
    let shared = dir.path().join("shared-koji");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("package.rpm"), "shared storage").unwrap();
    let _bind = TestMount::bind(&shared, &root.join("f39-build-201-1/root/mnt/koji"));
    age(&root.join("f39-build-201-1"), 10);
    let services = Services::new(&dir.path().join("svc"), &["kojid"], "");

    let remediator = Remediator::start(KojiVersion::V1_33, &rules(&root, &services, 90.0)).await;
    remediator.post(&alert(HOST, "2026-11-28T17:00:00Z")).await;
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    let plan = runs[0]["plan"].as_str().unwrap();
    assert!(
        plan.contains("f39-build-201-1") && plan.contains("mounts still active inside"),
        "{plan}"
    );
    assert!(root
        .join("f39-build-201-1/root/mnt/koji/package.rpm")
        .exists());
    assert_eq!(
        std::fs::read_to_string(shared.join("package.rpm")).unwrap(),
        "shared storage"
    );
    assert!(
        !root.join("f39-build-202-1").exists(),
        "the other old entry went"
    );
}

#[tokio::test]
async fn services_start_again_when_deletion_fails_midway() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mock");
    let _tmpfs = TestMount::tmpfs(&root, "size=64m", "koji-clean-test");
    entry(&root, "f39-build-301-1", 16, 10);
    // Stopping kojid leaves a mount behind inside the planned entry (a chroot's /proc that
    // mock did not unmount): the deletion must stop short of it, and kojid start anyway.
    let proc_mount = root.join("f39-build-301-1/root/proc");
    std::fs::create_dir_all(&proc_mount).unwrap();
    age(&root.join("f39-build-301-1"), 10);
    let on_stop = format!("mount -t tmpfs late-proc {}", proc_mount.display());
    let services = Services::new(&dir.path().join("svc"), &["kojid"], &on_stop);
    let _cleanup = TestMount::adopt(&proc_mount);

    let remediator = Remediator::start(KojiVersion::V1_33, &rules(&root, &services, 90.0)).await;
    remediator.post(&alert(HOST, "2026-11-28T18:00:00Z")).await;
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "failed", "{runs:#?}");
    assert!(
        runs[0]["outcome"]
            .as_str()
            .unwrap()
            .contains("a mount appeared inside"),
        "{runs:#?}"
    );
    assert_eq!(services.calls(), "stop kojid\nstart kojid\n");
    assert!(services.running("kojid"));
    assert!(root.join("f39-build-301-1/root/var/tmp/blob").exists());
}

#[tokio::test]
async fn the_hubs_active_buildroots_stay_and_other_hosts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mock");
    let _tmpfs = TestMount::tmpfs(&root, "size=64m", "koji-clean-test");
    entry(&root, "f39-build-7-3", 16, 10);
    entry(&root, "f39-build-8-3", 4, 10);
    let services = Services::new(&dir.path().join("svc"), &[], "");
    let remediator = Remediator::start(KojiVersion::V1_33, &rules(&root, &services, 90.0)).await;
    let hub = &remediator.hub.client;
    let host_id = add_host(hub, KojiVersion::V1_33, &HostSpec::new(HOST))
        .await
        .unwrap();
    hub.batch_execute(&format!(
        "INSERT INTO tag (id, name) VALUES (1, 'f39-build');
         INSERT INTO repo (id, tag_id, state) VALUES (3, 1, 1);
         INSERT INTO task (id, state, channel_id, host_id, owner, method, arch)
             VALUES (70, 1, 1, {host_id}, 1, 'buildArch', 'x86_64');
         INSERT INTO buildroot (id, br_type) VALUES (7, 0), (8, 0);
         INSERT INTO standard_buildroot (buildroot_id, host_id, repo_id, task_id, state)
             VALUES (7, {host_id}, 3, 70, 2), (8, {host_id}, 3, 70, 3);"
    ))
    .await
    .unwrap();

    // An alert about another builder: nothing happens here.
    remediator
        .post(&alert("buildvm-x86-99.example.org", "2026-11-28T19:00:00Z"))
        .await;
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "refused", "{runs:#?}");
    assert!(root.join("f39-build-8-3").exists());

    remediator.post(&alert(HOST, "2026-11-28T19:30:00Z")).await;
    let runs = remediator.finished_runs(2).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert!(runs[0]["plan"]
        .as_str()
        .unwrap()
        .contains("buildroot 7 is still active"));
    assert!(
        root.join("f39-build-7-3").exists(),
        "BUILDING buildroot kept"
    );
    assert!(
        !root.join("f39-build-8-3").exists(),
        "EXPIRED buildroot deleted"
    );
    assert_eq!(services.calls(), "", "nothing was running, nothing stopped");
}

#[test]
fn roots_that_could_escape_are_refused_at_start_and_rules_cannot_name_policy() {
    let dir = tempfile::tempdir().unwrap();
    let base = support::config_text(dir.path(), "host=h", "host=j", "");
    for root in [
        "/",
        "relative/mock",
        "/var/lib/../../etc",
        "/var/lib/mock/.",
    ] {
        let text = format!(
            "{base}\n{}",
            local_agent(dir.path(), &format!("roots = [\"{root}\"]"))
        );
        let error = koji_remediator::config::Config::parse(&text, Path::new("r.toml")).unwrap_err();
        assert!(
            error.to_string().contains("agent.clean_build_dirs"),
            "{root}: {error}"
        );
    }
    // A rule naming what the builder's own policy decides is refused, naming where it goes.
    for key in [
        "roots = [\"/etc\"]",
        "stop_command = [\"/bin/sh\"]",
        "procfs = \"/tmp\"",
    ] {
        let text = format!(
            "{base}\n[[rule]]\nname = \"r\"\nalertname = \"A\"\naction = \"clean_build_dirs\"\npolicy = \"auto\"\nparams = {{ {key} }}\n{}",
            local_agent(dir.path(), "roots = [\"/var/lib/mock\"]")
        );
        let error = koji_remediator::config::Config::parse(&text, Path::new("r.toml")).unwrap_err();
        let said = error.to_string();
        assert!(
            said.contains("rule[0].params") && said.contains("[agent.clean_build_dirs]"),
            "{key}: {said}"
        );
    }
}
