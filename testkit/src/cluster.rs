//! A private PostgreSQL cluster that a test can stop, start and restart.
//!
//! Tests that take the database away must not do it to the shared server the other tests
//! use, so they make their own with `initdb` (run as the `postgres` system user, since the
//! server refuses to run as root) on a free port in a temporary directory. A standby of one
//! ([`TempCluster::standby_of`]) streams from it and can be promoted, for failover tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// A running (or stopped) throwaway cluster; removed when dropped.
#[derive(Debug)]
pub struct TempCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The TCP port the cluster listens on, on 127.0.0.1.
    pub port: u16,
}

/// The newest installed PostgreSQL server binaries, or `KOJI_TEST_PG_BIN`.
fn server_bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("KOJI_TEST_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no PostgreSQL server under /usr/lib/postgresql")?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .context("no initdb under /usr/lib/postgresql/*/bin")
}

/// Makes `path` (recursively) the `postgres` system user's, which the server runs as.
fn give_to_postgres(path: &Path) -> anyhow::Result<()> {
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()?;
    if !status.success() {
        bail!("chown of {} to postgres failed", path.display());
    }
    Ok(())
}

fn run_as_postgres(program: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !output.status.success() {
        bail!(
            "{} {:?} failed: {}",
            program.display(),
            args,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

impl TempCluster {
    /// Initialises a cluster with trust authentication and starts it.
    pub fn start_new(extra_settings: &[&str]) -> anyhow::Result<TempCluster> {
        let bin = server_bin_dir()?;
        let dir = tempfile::Builder::new().prefix("koji-pg-").tempdir()?;
        give_to_postgres(dir.path())?;
        let data = dir.path().join("data");
        run_as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().context("data dir is not UTF-8")?,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        )?;
        let mut conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\nfsync = off\n",
            crate::ports::free_port(),
            dir.path().display()
        );
        for setting in extra_settings {
            conf.push_str(setting);
            conf.push('\n');
        }
        let port = conf
            .lines()
            .find_map(|l| l.strip_prefix("port = "))
            .and_then(|p| p.parse().ok())
            .context("port")?;
        std::fs::write(data.join("postgresql.auto.conf"), conf)?;
        let cluster = TempCluster { dir, bin, port };
        cluster.start()?;
        Ok(cluster)
    }

    /// A streaming standby of `primary`, copied with `pg_basebackup` and started; it
    /// connects as `name` (so a primary with `synchronous_standby_names = 'name'` waits
    /// for it before a commit returns). Its own `synchronous_standby_names` is empty, so
    /// once promoted it commits alone.
    pub fn standby_of(primary: &TempCluster, name: &str) -> anyhow::Result<TempCluster> {
        let dir = tempfile::Builder::new()
            .prefix("koji-pg-standby-")
            .tempdir()?;
        give_to_postgres(dir.path())?;
        let data = dir.path().join("data");
        let data_text = data.to_str().context("data dir is not UTF-8")?.to_owned();
        run_as_postgres(
            &primary.bin.join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
                &data_text,
                "-X",
                "stream",
                // A fast checkpoint: the default spreads it over minutes.
                "--checkpoint=fast",
                "--no-sync",
            ],
        )?;
        let port = crate::ports::free_port();
        // Later settings win: the copy of the primary's own file comes first.
        let mut conf = std::fs::read_to_string(data.join("postgresql.auto.conf"))?;
        conf.push_str(&format!(
            "port = {port}
unix_socket_directories = '{}'
synchronous_standby_names = ''
             primary_conninfo = 'host=127.0.0.1 port={} user=postgres application_name={name}'
",
            dir.path().display(),
            primary.port
        ));
        std::fs::write(data.join("postgresql.auto.conf"), conf)?;
        std::fs::write(data.join("standby.signal"), "")?;
        give_to_postgres(dir.path())?;
        let standby = TempCluster {
            dir,
            bin: primary.bin.clone(),
            port,
        };
        standby.start()?;
        Ok(standby)
    }

    /// Promotes a standby to primary and waits until it accepts writes.
    pub fn promote(&self) -> anyhow::Result<()> {
        run_as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data_dir(), "-w", "promote"],
        )
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) -> anyhow::Result<()> {
        let log = self.dir.path().join("server.log").display().to_string();
        run_as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data_dir(), "-l", &log, "-w", "start"],
        )
    }

    /// Stops the server, disconnecting every client (a crash or restart, as clients see it).
    pub fn stop(&self) -> anyhow::Result<()> {
        run_as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"],
        )
    }

    /// A connection string for `dbname` as the superuser.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={dbname}",
            self.port
        )
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A journal's highly available pair: a primary and its synchronous streaming standby,
/// both on loopback, with database `dbname` made on the primary (and streamed).
#[derive(Debug)]
pub struct ReplicatedPair {
    /// Where writes go until it is stopped.
    pub primary: TempCluster,
    /// Streams from the primary; promote it for a failover.
    pub standby: TempCluster,
    /// `host=127.0.0.1,127.0.0.1 port=<primary>,<standby> ... target_session_attrs=read-write`:
    /// connects to whichever of the two accepts writes.
    pub url: String,
}

impl ReplicatedPair {
    /// Starts both, and makes the standby synchronous (a commit on the primary returns
    /// once the standby has it) after the database exists: before, its commit would wait
    /// for a standby not yet there.
    pub async fn start(dbname: &str) -> anyhow::Result<ReplicatedPair> {
        let primary = TempCluster::start_new(&[])?;
        let admin = crate::test_db::connect(&primary.url("postgres")).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {dbname}"))
            .await?;
        let standby = TempCluster::standby_of(&primary, "standby")?;
        admin
            .batch_execute("ALTER SYSTEM SET synchronous_standby_names = 'standby'")
            .await?;
        admin.batch_execute("SELECT pg_reload_conf()").await?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let state: Option<String> = admin
                .query_opt(
                    "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'",
                    &[],
                )
                .await?
                .map(|row| row.get(0));
            if state.as_deref() == Some("sync") {
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!("the standby is not synchronous: {state:?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let url = format!(
            "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname={dbname} target_session_attrs=read-write",
            primary.port, standby.port
        );
        Ok(ReplicatedPair {
            primary,
            standby,
            url,
        })
    }
}
