//! The exporter's configuration file (TOML), parsed strictly, and its embedded default.
//!
//! Unknown keys are errors that name the key and the file, so a typo never silently falls
//! back to a default. Secrets never sit in the file or on the command line: the database
//! URL may come from `KOJI_EXPORTER_DB_URL` and its password from `database.password_file`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::collectors::table::CollectorId;

/// Environment variable that overrides `database.url`.
pub const DB_URL_ENV: &str = "KOJI_EXPORTER_DB_URL";

/// Where the exporter listens when neither flag nor file says: this host only.
pub const DEFAULT_LISTEN_ADDRESS: &str = "127.0.0.1:9866";

/// The hub database a stock Koji install uses, tried when nothing else is configured.
pub const DEFAULT_DB_URL: &str = "postgresql://koji@localhost/koji";

/// Everything the configuration file can say.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP listener and scrape behaviour.
    pub web: WebConfig,
    /// Collector name to enabled flag; names not listed keep their default.
    pub collectors: BTreeMap<String, bool>,
    /// The hub database.
    pub database: DatabaseConfig,
    /// The hub's XML-RPC endpoint, probed by the `koji_hub` collector.
    pub hub: HubConfig,
    /// Where the local collectors find the kernel's views.
    pub paths: PathsConfig,
    /// The file systems to watch.
    pub filesystems: FilesystemsConfig,
    /// The daemons to look for in the process table.
    pub services: ServicesConfig,
    /// Who this machine is in Koji.
    pub builder: BuilderConfig,
    /// The build-directory scanner.
    pub builddirs: BuilddirsConfig,
}

/// `[builddirs]`: the background scan of the builders' build directories.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BuilddirsConfig {
    /// Roots to scan; missing ones are skipped.
    pub roots: Vec<PathBuf>,
    /// A top-level entry whose newest change is older than this is stale (the runbook
    /// deletes what is older than one week).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Pause between the end of one scan and the start of the next.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for BuilddirsConfig {
    fn default() -> Self {
        BuilddirsConfig {
            roots: vec![PathBuf::from("/var/lib/mock"), PathBuf::from("/mnt/build")],
            retention: Duration::from_secs(7 * 24 * 3600),
            interval: Duration::from_secs(300),
        }
    }
}

/// `[services]`: process names to report as up or down.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServicesConfig {
    /// Process names (the daemon's executable or script name).
    pub names: Vec<String>,
}

impl Default for ServicesConfig {
    fn default() -> Self {
        ServicesConfig {
            names: ["kojid", "kojira", "httpd", "plague-builder"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// `[builder]`: this machine's identity in Koji.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BuilderConfig {
    /// The Koji host name this machine builds as (`koji_builder_info{host}`), for joins
    /// with the hub's `koji_host_*` series; default: this machine's fully qualified name.
    pub host_name: Option<String>,
}

/// `[filesystems]`: watched paths and how long a file system may take to answer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FilesystemsConfig {
    /// How long one `statvfs` may take before its mount counts as failing (a dead NFS
    /// server never answers).
    #[serde(with = "humantime_serde")]
    pub stat_timeout: Duration,
    /// The paths to watch, each resolved to the mount that holds it. Missing paths are
    /// skipped (and logged once).
    pub paths: Vec<WatchedPath>,
}

/// One watched path.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WatchedPath {
    /// Absolute path.
    pub path: PathBuf,
    /// Whose problem a full file system is.
    pub role: Role,
}

/// Whose problem a full file system is.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// This builder's own disk: the remediator may clean it.
    Local,
    /// Storage shared by the build system: a human must act.
    Shared,
}

impl Role {
    /// The `role` label value.
    pub fn label(self) -> &'static str {
        match self {
            Role::Local => "local",
            Role::Shared => "shared",
        }
    }
}

impl Default for FilesystemsConfig {
    fn default() -> Self {
        let watched = |path: &str, role| WatchedPath {
            path: PathBuf::from(path),
            role,
        };
        FilesystemsConfig {
            stat_timeout: Duration::from_secs(1),
            paths: vec![
                watched("/", Role::Local),
                watched("/var/lib/mock", Role::Local),
                watched("/mnt/build", Role::Local),
                watched("/mnt/koji", Role::Shared),
                watched("/pub/fedora", Role::Shared),
                watched("/pub/epel", Role::Shared),
                watched("/mnt/ntap-fedora1/scratch", Role::Shared),
            ],
        }
    }
}

/// `[paths]`: kernel file systems, replaceable for containers and tests.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    /// procfs mount point.
    pub procfs: PathBuf,
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            procfs: PathBuf::from("/proc"),
        }
    }
}

/// `[web]`: where to listen and how long a scrape may take.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// `host:port` to listen on.
    pub listen_address: String,
    /// Upper bound for one scrape; Prometheus' own `X-Prometheus-Scrape-Timeout-Seconds`
    /// header lowers it further.
    #[serde(with = "humantime_serde")]
    pub scrape_timeout: Duration,
    /// Web config file in the Prometheus exporter toolkit's format (`tls_server_config`,
    /// as node_exporter's `--web.config.file`); without it, plain HTTP.
    pub config_file: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (without it, such a listener needs TLS).
    pub allow_plain_http: bool,
    /// A request's whole header must arrive within this, and an idle keep-alive connection
    /// is closed after it: longer than the scrape interval, so Prometheus reuses its
    /// connections.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Connections served at once; beyond, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// On SIGTERM, how long scrapes in flight may take before the process stops anyway.
    #[serde(with = "humantime_serde")]
    pub shutdown_drain: Duration,
}

impl WebConfig {
    /// The listener's limits (the body timeout and the TLS handshake's as
    /// [`koji_tls::Limits::default`]).
    pub fn limits(&self) -> koji_tls::Limits {
        koji_tls::Limits {
            header_read_timeout: self.header_read_timeout,
            max_connections: self.max_connections,
            drain: self.shutdown_drain,
            ..koji_tls::Limits::default()
        }
    }
}

/// The hub a stock Koji install serves on its own host.
pub const DEFAULT_HUB_URL: &str = "http://localhost/kojihub";

/// `[hub]`: the hub's XML-RPC endpoint, which the `koji_hub` collector calls.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// The XML-RPC URL (`http://` or `https://`), as builders' `server` setting names it.
    pub url: String,
    /// A probe not answered within this counts as the hub down (also bounded by the
    /// scrape's own deadline).
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
    /// CA certificates (PEM) for an `https://` hub whose certificate the system's roots
    /// do not cover.
    pub ca_file: Option<PathBuf>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            url: DEFAULT_HUB_URL.into(),
            probe_timeout: Duration::from_secs(5),
            ca_file: None,
        }
    }
}

/// `[database]`: the Koji hub's PostgreSQL.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// libpq-style URL or key=value string; `KOJI_EXPORTER_DB_URL` overrides it.
    pub url: Option<String>,
    /// File whose first line is the password, for URLs that carry none.
    pub password_file: Option<PathBuf>,
    /// How long to wait for a new connection before reporting the database down.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Connections kept open to the database (one per database collector suffices).
    pub pool_size: usize,
    /// A connection whose last query started longer ago than this is stale (the runbook
    /// uses 40 minutes: longer than the restarted hub can have been up).
    #[serde(with = "humantime_serde")]
    pub stale_connection_age: Duration,
    /// Database users whose stale connection count is always exported, 0 included, so alert
    /// rules have a series to compare (the hub's user is usually `koji`).
    pub koji_users: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen_address: DEFAULT_LISTEN_ADDRESS.into(),
            scrape_timeout: Duration::from_secs(10),
            config_file: None,
            allow_plain_http: false,
            header_read_timeout: Duration::from_secs(120),
            max_connections: 4096,
            shutdown_drain: Duration::from_secs(30),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            password_file: None,
            connect_timeout: Duration::from_secs(3),
            pool_size: 4,
            stale_connection_age: Duration::from_secs(40 * 60),
            koji_users: vec!["koji".into()],
        }
    }
}

pub use koji_config::ConfigError;

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::parse(&koji_config::read(path)?, path)
    }

    /// Parses and validates configuration text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = koji_config::parse(text, path)?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| koji_config::invalid(path, key, reason);
        for name in self.collectors.keys() {
            if CollectorId::from_name(name).is_none() {
                return Err(invalid(
                    &format!("collectors.{name}"),
                    format!(
                        "unknown collector; known: {}",
                        CollectorId::names().join(", ")
                    ),
                ));
            }
        }
        if self.web.scrape_timeout.is_zero() {
            return Err(invalid("web.scrape_timeout", "must be more than 0".into()));
        }
        if !(self.hub.url.starts_with("http://") || self.hub.url.starts_with("https://")) {
            return Err(invalid(
                "hub.url",
                format!("{:?} is not an http(s) URL", self.hub.url),
            ));
        }
        if self.hub.probe_timeout.is_zero() {
            return Err(invalid("hub.probe_timeout", "must be more than 0".into()));
        }
        if let Some(ca_file) = &self.hub.ca_file {
            if let Err(error) = std::fs::read(ca_file) {
                return Err(invalid(
                    "hub.ca_file",
                    format!("cannot read {}: {error}", ca_file.display()),
                ));
            }
        }
        if self.web.header_read_timeout.is_zero() {
            return Err(invalid(
                "web.header_read_timeout",
                "must be more than 0".into(),
            ));
        }
        if self.web.max_connections == 0 {
            return Err(invalid("web.max_connections", "must be at least 1".into()));
        }
        if self.database.connect_timeout.is_zero() {
            return Err(invalid(
                "database.connect_timeout",
                "must be more than 0".into(),
            ));
        }
        if self.filesystems.stat_timeout.is_zero() {
            return Err(invalid(
                "filesystems.stat_timeout",
                "must be more than 0".into(),
            ));
        }
        for (index, watched) in self.filesystems.paths.iter().enumerate() {
            if !watched.path.is_absolute() {
                return Err(invalid(
                    &format!("filesystems.paths[{index}].path"),
                    format!("{} is not an absolute path", watched.path.display()),
                ));
            }
        }
        if let Some(name) = self
            .services
            .names
            .iter()
            .find(|name| name.is_empty() || name.contains('/'))
        {
            return Err(invalid(
                "services.names",
                format!("{name:?} is not a process name"),
            ));
        }
        if self.builddirs.interval.is_zero() {
            return Err(invalid("builddirs.interval", "must be more than 0".into()));
        }
        if let Some(root) = self.builddirs.roots.iter().find(|root| !root.is_absolute()) {
            return Err(invalid(
                "builddirs.roots",
                format!("{} is not an absolute path", root.display()),
            ));
        }
        if self.database.pool_size == 0 {
            return Err(invalid("database.pool_size", "must be at least 1".into()));
        }
        if let Some(url) = &self.database.url {
            if let Err(error) = url.parse::<tokio_postgres::Config>() {
                return Err(invalid(
                    "database.url",
                    format!("not a PostgreSQL connection string: {error}"),
                ));
            }
        }
        Ok(())
    }

    /// The database URL in force: the environment, else the file, else Koji's default.
    pub fn database_url(&self) -> String {
        std::env::var(DB_URL_ENV)
            .ok()
            .filter(|url| !url.is_empty())
            .or_else(|| self.database.url.clone())
            .unwrap_or_else(|| DEFAULT_DB_URL.into())
    }
}
