//! The one PostgreSQL pool builder of both binaries: a lazily connecting deadpool whose
//! connections name themselves in `pg_stat_activity`, carry the caller's server options,
//! time out instead of hanging, and are verified before reuse (which is how a pool notices
//! a restarted server and reconnects without its process restarting).

use std::path::{Path, PathBuf};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;

/// How to build one pool.
#[derive(Debug, Clone)]
pub struct PoolSettings<'a> {
    /// The libpq URL or `key=value` string.
    pub url: &'a str,
    /// Where the URL came from (a config key or an environment variable), for errors.
    pub url_source: &'static str,
    /// A file whose first line is the password.
    pub password_file: Option<&'a Path>,
    /// The config key naming that file, for errors.
    pub password_key: &'static str,
    /// `application_name` of every connection.
    pub application_name: &'a str,
    /// Server options (`-c name=value ...`), if any.
    pub options: Option<String>,
    /// A new connection taking longer means the database is down.
    pub connect_timeout: Duration,
    /// Longest the check of a pooled connection before reuse may take.
    pub recycle_timeout: Duration,
    /// Connections kept.
    pub size: usize,
}

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolBuildError {
    /// The connection string did not parse (never echoed: it may hold a password).
    #[error("{source_name} is not a PostgreSQL connection string: {reason}")]
    BadUrl {
        /// The config key or environment variable it came from.
        source_name: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// The password file could not be read.
    #[error("cannot read {key} {path}: {source}")]
    PasswordFile {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// deadpool refused the settings.
    #[error("cannot build the connection pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
}

/// Builds the pool; it connects lazily, so a database that is down now is no error.
pub fn build_pool(settings: &PoolSettings<'_>) -> Result<Pool, PoolBuildError> {
    let mut pg: tokio_postgres::Config =
        settings
            .url
            .parse()
            .map_err(|error: tokio_postgres::Error| PoolBuildError::BadUrl {
                source_name: settings.url_source,
                reason: error.to_string(),
            })?;
    if let Some(path) = settings.password_file {
        let password =
            std::fs::read_to_string(path).map_err(|source| PoolBuildError::PasswordFile {
                key: settings.password_key,
                path: path.to_path_buf(),
                source,
            })?;
        pg.password(password.lines().next().unwrap_or_default());
    }
    pg.connect_timeout(settings.connect_timeout)
        .application_name(settings.application_name);
    if let Some(options) = &settings.options {
        pg.options(options);
    }
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(settings.size)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(settings.connect_timeout),
            create: Some(settings.connect_timeout),
            recycle: Some(settings.recycle_timeout),
        })
        .build()?)
}
