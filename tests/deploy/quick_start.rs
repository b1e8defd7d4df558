//! README's "Trying the remediator on one machine", run exactly as written: the blocks
//! marked `quickstart:setup`, `quickstart:serve` (in its own process group, as in a second
//! terminal), `quickstart:try` and `quickstart:clean`, each by bash from the repository's
//! root. What they print is checked: the delivery acknowledged, the run in the journal,
//! the capacity one step lower under the remediator's Koji user, then back.
//!
//! The blocks use fixed names (databases `koji_try` and `koji_try_journal`, the folder
//! `/tmp/koji-try`, port 9867) as a reader would; the clean block runs first too, so a
//! run interrupted earlier leaves nothing in the way.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use koji_e2e::repo_root;

/// The shell block after `<!-- quickstart:NAME -->` in README.md.
fn readme_block(name: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let marker = format!("<!-- quickstart:{name} -->\n```sh\n");
    let start = readme.find(&marker).expect("the README's block") + marker.len();
    let end = readme[start..].find("```").unwrap() + start;
    readme[start..end].to_owned()
}

/// Runs a block with `bash -e`; its standard output, or a panic with everything it said.
fn run_block(name: &str) -> String {
    let output = Command::new("bash")
        .args(["-e", "-c", &readme_block(name)])
        .current_dir(repo_root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "README block {name} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The remediator started by the serve block; its whole process group is stopped on drop.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let group = rustix::process::Pid::from_raw(self.0.id() as i32).unwrap();
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
        let _ = self.0.wait();
    }
}

#[test]
fn the_readme_quick_start_works_as_written() {
    run_block("clean");
    run_block("setup");
    assert!(std::fs::metadata("/tmp/koji-try/webhook.token").is_ok());

    let serve = readme_block("serve");
    let server = Command::new("bash")
        .args(["-e", "-c", &serve])
        .current_dir(repo_root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let serving = Serving(server);
    // As the README says: once /healthz answers (cargo may still be building).
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let answered = Command::new("curl")
            .args(["-sf", "http://127.0.0.1:9867/healthz"])
            .output()
            .unwrap();
        if answered.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "the remediator never answered");
        std::thread::sleep(Duration::from_millis(500));
    }

    let said = run_block("try");
    let lines: Vec<&str> = said.lines().map(str::trim).collect();
    // The firing delivery: one alert, one run claimed.
    assert!(
        said.contains("\"runs_claimed\":1"),
        "the firing delivery claims a run:\n{said}"
    );
    assert!(
        said.contains("\"state\":\"succeeded\"") && said.contains("\"action\":\"lower_capacity\""),
        "the journal shows the run:\n{said}"
    );
    // Koji's rows for the host: 7 revoked (active NULL) by the generator's admin, then 6
    // created by the remediator's Koji user, active.
    let rows: Vec<Vec<&str>> = lines
        .iter()
        .filter(|line| line.contains('|'))
        .map(|line| line.split('|').map(str::trim).collect())
        .collect();
    assert!(
        rows.contains(&vec!["7", "", "kojiadmin"])
            && rows.contains(&vec!["6", "t", "koji-remediator"]),
        "the capacity change as Koji records it:\n{said}"
    );
    // After the resolved notification: the restore ran and the capacity is 7 again.
    assert!(
        said.contains("\"kind\":\"restore\""),
        "the journal shows the restore:\n{said}"
    );
    let last_capacity = lines
        .iter()
        .rev()
        .find(|line| line.parse::<f64>().is_ok())
        .copied();
    assert_eq!(last_capacity, Some("7"), "capacity back:\n{said}");

    drop(serving);
    run_block("clean");
    assert!(std::fs::metadata("/tmp/koji-try").is_err());
}

/// The central example serves HTTPS only (a web config file, no plain HTTP beyond
/// loopback), so every README address of a remediator (port 9867) beyond loopback is
/// `https://`; plain `http://` appears only for 127.0.0.1 and localhost.
#[test]
fn readme_addresses_the_central_example_as_it_serves() {
    let example =
        std::fs::read_to_string(repo_root().join("examples/koji-remediator.toml")).unwrap();
    assert!(
        example.contains("\nweb_config_file = "),
        "the example serves TLS"
    );
    assert!(!example.contains("\nallow_plain_http = true"));
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let mut checked = 0;
    for (index, _) in readme.match_indices(":9867") {
        let before = &readme[..index];
        let start = before
            .rfind(|c: char| c.is_whitespace() || c == '`' || c == '(' || c == '"')
            .map_or(0, |at| at + 1);
        let address = &readme[start..index + 5];
        if !address.contains("://") {
            continue;
        }
        checked += 1;
        let loopback = address.contains("//127.0.0.1:") || address.contains("//localhost:");
        assert!(
            loopback || address.starts_with("https://"),
            "README addresses a remediator as {address}"
        );
    }
    assert!(checked >= 3, "README's remediator addresses: {checked}");
}
