//! Connection pools to the journal and hub databases.
//!
//! Every connection names itself `koji-remediator` in `pg_stat_activity`: the stale
//! connection fix never terminates a backend of that name, so the remediator cannot cut its
//! own connections whatever user it logs in as.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;

use crate::config::sections::DatabaseConfig;

/// The `application_name` of every remediator connection.
pub const APPLICATION_NAME: &str = "koji-remediator";

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// No URL in the file or the environment.
    #[error("no {key} and no {env} set")]
    NoUrl {
        /// The config key.
        key: &'static str,
        /// The environment variable.
        env: &'static str,
    },
    /// The URL did not parse (not echoed: it may carry a password).
    #[error("{key} is not a PostgreSQL connection string: {reason}")]
    BadUrl {
        /// The config key or variable.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// The password file could not be read.
    #[error("cannot read {path}: {source}")]
    PasswordFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// deadpool refused the settings.
    #[error("cannot build the pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
}

/// Builds a lazily connecting pool: the environment variable `env` overrides `config.url`.
pub fn pool(
    config: &DatabaseConfig,
    key: &'static str,
    env: &'static str,
    size: usize,
) -> Result<Pool, DatabaseError> {
    let url = std::env::var(env)
        .ok()
        .filter(|url| !url.is_empty())
        .or_else(|| config.url.clone())
        .ok_or(DatabaseError::NoUrl { key, env })?;
    let mut pg: tokio_postgres::Config =
        url.parse()
            .map_err(|error: tokio_postgres::Error| DatabaseError::BadUrl {
                key,
                reason: error.to_string(),
            })?;
    if let Some(path) = &config.password_file {
        let password =
            std::fs::read_to_string(path).map_err(|source| DatabaseError::PasswordFile {
                path: path.clone(),
                source,
            })?;
        pg.password(password.lines().next().unwrap_or_default());
    }
    let timeout = Duration::from_secs(5);
    pg.connect_timeout(timeout)
        .application_name(APPLICATION_NAME);
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(timeout),
            create: Some(timeout),
            recycle: Some(timeout),
        })
        .build()?)
}
