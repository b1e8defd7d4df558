//! Koji's real hub for tests: its own schema, its own XML-RPC server and its own `koji`
//! command line, so that what the tests assert is what Koji itself accepts and shows.
//!
//! The hub is the one beside the repository (`../shared/koji-hub/`: a source tarball at a
//! fixed commit and a wsgiref launcher), found through `KOJI_HUB_DIR`, then
//! `<repository>/../shared/koji-hub`, then `/work/shared/koji-hub`. It runs under
//! `/usr/bin/python3` with Debian's python3-rpm, python3-psycopg2, python3-dateutil,
//! python3-requests and python3-defusedxml (`tools/install-test-deps` installs them).
//! [`KojiHub::start`] fills a test's empty database with Koji's `schemas/schema.sql` and
//! the first administrator (`admin` / `admin-password`) and serves the hub on it; the
//! server process stops when the [`KojiHub`] is dropped (the database stays the test's).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::test_db::TestDb;

/// The first administrator's name, as `bootstrap-admin.sql` makes it.
pub const ADMIN: &str = "admin";
/// The first administrator's password.
pub const ADMIN_PASSWORD: &str = "admin-password";

/// A builder's check-in as kojid makes it: log in, take the exclusive session, report load
/// and readiness through `host.updateHost` (argv: url, host, password).
const CHECK_IN: &str = "import sys, koji
url, user, password = sys.argv[1:4]
session = koji.ClientSession(url, {'user': user, 'password': password})
session.login()
session.exclusiveSession(force=True)
session.host.updateHost(0.0, True)
session.logout()
";

/// A builder's call (`session.host.<method>(*args)`, the arguments as JSON) after logging
/// in as kojid does; prints the result as JSON.
const BUILDER_CALL: &str = "import sys, json, koji
url, user, password, method, args = sys.argv[1:6]
session = koji.ClientSession(url, {'user': user, 'password': password})
session.login()
session.exclusiveSession(force=True)
print(json.dumps(getattr(session.host, method)(*json.loads(args))))
session.logout()
";

/// Where Koji's hub for tests lives.
pub fn koji_hub_dir() -> anyhow::Result<PathBuf> {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = std::env::var_os("KOJI_HUB_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            repository.join("../shared/koji-hub"),
            PathBuf::from("/work/shared/koji-hub"),
        ]);
    for candidate in candidates {
        if candidate.join("serve").is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "Koji's hub for tests is not there: set KOJI_HUB_DIR to the directory holding `serve` \
         and koji-src-*.tar.gz (../shared/koji-hub beside the repository)"
    )
}

/// A running Koji hub.
pub struct KojiHub {
    /// The XML-RPC endpoint, `http://127.0.0.1:PORT/kojihub`.
    pub url: String,
    /// A superuser connection to the hub's database.
    client: tokio_postgres::Client,
    server: Child,
    /// The command line that serves it (`/usr/bin/python3 serve --db ... --port ...`).
    command: Vec<String>,
    /// The unpacked source, for the `koji` command line, and its client configuration.
    work: tempfile::TempDir,
}

impl KojiHub {
    /// Fills `db` (empty) with Koji's schema and the first administrator, and serves the
    /// hub on it. `hub_options` are extra `[hub]` settings (`KEY=VALUE`).
    pub async fn start(db: &TestDb, hub_options: &[&str]) -> anyhow::Result<KojiHub> {
        KojiHub::start_on(&db.url, &db.name, hub_options).await
    }

    /// [`KojiHub::start`] on any empty database: `database_url` (key=value, as the superuser)
    /// naming the database `name`, e.g. one of a [`crate::TempCluster`] a test restarts.
    pub async fn start_on(
        database_url: &str,
        name: &str,
        hub_options: &[&str],
    ) -> anyhow::Result<KojiHub> {
        let dir = koji_hub_dir()?;
        let work = tempfile::tempdir()?;
        let tarball = std::fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with("koji-src-") && name.ends_with(".tar.gz"))
            })
            .with_context(|| format!("no koji-src-*.tar.gz in {}", dir.display()))?;
        run(Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(work.path()))
        .await?;

        for sql in [
            work.path().join("koji/schemas/schema.sql"),
            dir.join("bootstrap-admin.sql"),
        ] {
            run(Command::new("psql")
                .arg("-q")
                .arg("-v")
                .arg("ON_ERROR_STOP=1")
                .arg("-d")
                .arg(database_url)
                .arg("-f")
                .arg(&sql))
            .await?;
        }

        let port = crate::ports::free_port();
        let (pg_host, pg_port, pg_user) = connection_parts(database_url);
        let mut words = vec![
            "/usr/bin/python3".to_owned(),
            dir.join("serve").display().to_string(),
        ];
        words.extend(
            [
                "--db",
                name,
                "--port",
                &port.to_string(),
                "--pg-host",
                &pg_host,
                "--pg-port",
                &pg_port,
                "--db-user",
                &pg_user,
            ]
            .map(str::to_owned),
        );
        words.push("--koji-dir".to_owned());
        words.push(work.path().join("mnt-koji").display().to_string());
        for option in hub_options {
            words.push("--hub-option".to_owned());
            words.push((*option).to_owned());
        }
        let mut command = Command::new(&words[0]);
        command.args(&words[1..]);
        let mut server = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting Koji's hub (/usr/bin/python3)")?;
        let stdout = server.stdout.take().context("the hub's output")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if line.starts_with("koji hub ready on ") {
                    return Ok(true);
                }
            }
            Ok::<_, std::io::Error>(false)
        })
        .await;
        if !matches!(ready, Ok(Ok(true))) {
            let status = server.try_wait()?;
            bail!(
                "Koji's hub did not start (exit {status:?}); are python3-rpm python3-psycopg2 \
                 python3-dateutil python3-requests python3-defusedxml installed?"
            );
        }
        // Keep reading its output so that a full pipe never blocks it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let url = format!("http://127.0.0.1:{port}/kojihub");
        std::fs::write(
            work.path().join("koji.conf"),
            format!("[koji]\nserver = {url}\nauthtype = password\n"),
        )?;
        let hub = KojiHub {
            client: crate::test_db::connect(database_url).await?,
            url,
            server,
            command: words,
            work,
        };
        let version = hub.koji_anonymous(&["version"]).await?;
        anyhow::ensure!(version.contains("Hub:"), "koji version said {version}");
        Ok(hub)
    }

    /// Runs the `koji` command line as the administrator, returning its output.
    pub async fn koji_admin(&self, args: &[&str]) -> anyhow::Result<String> {
        self.koji_as(ADMIN, ADMIN_PASSWORD, args).await
    }

    /// Runs the `koji` command line logged in as `user`, returning its standard output;
    /// a failure carries its standard error.
    pub async fn koji_as(
        &self,
        user: &str,
        password: &str,
        args: &[&str],
    ) -> anyhow::Result<String> {
        self.koji(&["--user", user, "--password", password], args)
            .await
    }

    /// Runs the `koji` command line without logging in, as an administrator reads.
    pub async fn koji_anonymous(&self, args: &[&str]) -> anyhow::Result<String> {
        self.koji(&["--noauth"], args).await
    }

    async fn koji(&self, login: &[&str], args: &[&str]) -> anyhow::Result<String> {
        let source = self.work.path().join("koji");
        run(Command::new("/usr/bin/python3")
            .current_dir(&source)
            .env("PYTHONPATH", &source)
            .arg("cli/koji")
            .arg("-c")
            .arg(self.work.path().join("koji.conf"))
            .args(login)
            .args(args))
        .await
    }

    /// Gives a Koji user a password, so it can log in (as Koji's README for builders
    /// says: `users.password`), e.g. to try a call as that user.
    pub async fn set_password(&self, user: &str, password: &str) -> anyhow::Result<()> {
        let changed = self
            .client
            .execute(
                "UPDATE users SET password = $2 WHERE name = $1",
                &[&user, &password],
            )
            .await?;
        anyhow::ensure!(changed == 1, "no Koji user {user}");
        Ok(())
    }

    /// Checks in as the builder `host` (its Koji user's password set with
    /// [`KojiHub::set_password`]), as kojid does: Koji records the time in `host.update_time`.
    pub async fn check_in(&self, host: &str, password: &str) -> anyhow::Result<()> {
        let source = self.work.path().join("koji");
        run(Command::new("/usr/bin/python3")
            .env("PYTHONPATH", &source)
            .args(["-c", CHECK_IN, &self.url, host, password]))
        .await?;
        Ok(())
    }

    /// Calls `host.<method>` as the builder `host` (as kojid does: e.g. `openTask`,
    /// `closeTask`, `updateHost` with `ready` false when it shuts down); its result as JSON.
    pub async fn builder_call(
        &self,
        host: &str,
        password: &str,
        method: &str,
        args: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let source = self.work.path().join("koji");
        let printed = run(Command::new("/usr/bin/python3")
            .env("PYTHONPATH", &source)
            .args([
                "-c",
                BUILDER_CALL,
                &self.url,
                host,
                password,
                method,
                &args.to_string(),
            ]))
        .await?;
        Ok(serde_json::from_str(printed.trim())?)
    }

    /// The changes of `host`'s configuration `koji list-history --host --verbose` shows,
    /// oldest first, each as `user: field: old -> new` (capacity and enabled).
    pub async fn host_config_changes(&self, host: &str) -> anyhow::Result<Vec<String>> {
        let history = self
            .koji_anonymous(&["list-history", "--host", host, "--verbose"])
            .await?;
        let lines: Vec<&str> = history.lines().collect();
        let mut changes = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            if !(line.contains("host configuration for") && line.contains("altered")) {
                continue;
            }
            let by = line
                .split(" by ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or("?");
            for next in lines[index + 1..]
                .iter()
                .take_while(|next| next.starts_with(' ') || next.starts_with('\t'))
            {
                let next = next.trim();
                if next.starts_with("enabled:") || next.starts_with("capacity:") {
                    changes.push(format!("{by}: {next}"));
                }
            }
        }
        Ok(changes)
    }

    /// Writes, in `dir`, a koji-remediator agent configuration (`agent.toml`, token in
    /// `agent.token`) for the builder `host` that runs only `reboot_host`, whose command
    /// plays the machine rebooting: it records the call in `reboots.log` (returned), kojid
    /// says it stops (`updateHost` with ready false, as kojid's shutdown does), the shell
    /// lines `while_down` run, and kojid checks in again.
    pub fn write_rebooting_agent(
        &self,
        dir: &Path,
        host: &str,
        password: &str,
        token: &str,
        while_down: &str,
    ) -> PathBuf {
        let log = dir.join("reboots.log");
        let script = dir.join("reboot");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho reboot >> '{log}'\n{down} > /dev/null\n{while_down}\nsleep 1\n{up}\n",
                log = log.display(),
                down = self.builder_call_command_line(
                    host,
                    password,
                    "updateHost",
                    &serde_json::json!([0.0, false])
                ),
                up = self.check_in_command_line(host, password),
            ),
        )
        .expect("writing the reboot script");
        crate::mounts::run(&["chmod", "+x", script.to_str().expect("a UTF-8 path")]);
        std::fs::write(dir.join("agent.token"), token).expect("writing the agent token");
        std::fs::write(
            dir.join("agent.toml"),
            format!(
                "[agent]\ntoken_file = \"{d}/agent.token\"\nactions = [\"reboot_host\"]\n\
                 host_name = \"{host}\"\nstate_dir = \"{d}/agent-state\"\n\n\
                 [agent.reboot_host]\ncommand = [\"{script}\"]\ndelay = \"1s\"\n",
                d = dir.display(),
                script = script.display()
            ),
        )
        .expect("writing the agent configuration");
        log
    }

    /// [`KojiHub::builder_call`] as a shell command line, for a test's scripts.
    pub fn builder_call_command_line(
        &self,
        host: &str,
        password: &str,
        method: &str,
        args: &serde_json::Value,
    ) -> String {
        format!(
            "env PYTHONPATH='{}' /usr/bin/python3 -c \"{BUILDER_CALL}\" '{}' '{host}' '{password}' '{method}' '{args}'",
            self.work.path().join("koji").display(),
            self.url
        )
    }

    /// [`KojiHub::check_in`] as a shell command line, for a test's scripts.
    pub fn check_in_command_line(&self, host: &str, password: &str) -> String {
        format!(
            "env PYTHONPATH='{}' /usr/bin/python3 -c \"{CHECK_IN}\" '{}' '{host}' '{password}'",
            self.work.path().join("koji").display(),
            self.url
        )
    }

    /// Whether the server process started here is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.server.try_wait(), Ok(None))
    }

    /// Kills the server process started here (as a crash would) and waits for it.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.server.kill().await?;
        Ok(())
    }

    /// The command line that serves this hub again on the same port and database, for a
    /// test's restart script (each word shell-quoted).
    pub fn serve_command_line(&self) -> String {
        self.command
            .iter()
            .map(|word| format!("'{}'", word.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The `koji` command line logged in as `user`, for a test's scripts (shell-quoted).
    pub fn koji_command_line(&self, user: &str, password: &str) -> String {
        let source = self.work.path().join("koji");
        format!(
            "env PYTHONPATH='{src}' /usr/bin/python3 '{src}/cli/koji' -c '{conf}' --user '{user}' --password '{password}'",
            src = source.display(),
            conf = self.work.path().join("koji.conf").display(),
        )
    }
}

/// Runs a command to its end; its standard output, or an error with its standard error.
async fn run(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Host, port and user of a key=value connection string (defaults as libpq's).
fn connection_parts(url: &str) -> (String, String, String) {
    let part = |key: &str, default: &str| {
        url.split_whitespace()
            .find_map(|pair| pair.strip_prefix(&format!("{key}=")))
            .unwrap_or(default)
            .to_owned()
    };
    (
        part("host", "127.0.0.1"),
        part("port", "5432"),
        part("user", "postgres"),
    )
}
