//! Connection pools to the journal and hub databases, built by the shared
//! [`koji_db::pool`] builder.
//!
//! Every connection names itself `koji-remediator` in `pg_stat_activity`: the stale
//! connection fix never terminates a backend of that name, so the remediator cannot cut its
//! own connections whatever user it logs in as.

use std::time::Duration;

use deadpool_postgres::Pool;
use koji_db::pool::{build_pool, PoolBuildError, PoolSettings};

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
    /// The URL, the password file or the pool settings were refused.
    #[error(transparent)]
    Pool(#[from] PoolBuildError),
}

/// Builds a lazily connecting pool of `size`: the environment variable `env` overrides
/// `config.url` (named `key` in errors).
pub fn pool(
    config: &DatabaseConfig,
    key: &'static str,
    env: &'static str,
    size: usize,
) -> Result<Pool, DatabaseError> {
    pool_with(config, key, Some(env), size, None)
}

/// A one-connection pool whose sessions cannot write (`default_transaction_read_only`),
/// for reading a journal that must not change (a replay); `env`, when given, overrides
/// `config.url` (not when the URL came from the command line).
pub fn read_only_pool(
    config: &DatabaseConfig,
    key: &'static str,
    env: Option<&'static str>,
) -> Result<Pool, DatabaseError> {
    pool_with(
        config,
        key,
        env,
        1,
        Some("-c default_transaction_read_only=on".into()),
    )
}

fn pool_with(
    config: &DatabaseConfig,
    key: &'static str,
    env: Option<&'static str>,
    size: usize,
    options: Option<String>,
) -> Result<Pool, DatabaseError> {
    let from_env = env
        .and_then(|env| std::env::var(env).ok())
        .filter(|url| !url.is_empty());
    let url_source = match env {
        Some(env) if from_env.is_some() => env,
        _ => key,
    };
    let url = from_env
        .or_else(|| config.url.clone())
        .ok_or(DatabaseError::NoUrl {
            key,
            env: env.unwrap_or("environment override"),
        })?;
    let timeout = Duration::from_secs(5);
    Ok(build_pool(&PoolSettings {
        url: &url,
        url_source,
        password_file: config.password_file.as_deref(),
        password_key: "password_file",
        application_name: APPLICATION_NAME,
        options,
        connect_timeout: timeout,
        recycle_timeout: timeout,
        size,
    })?)
}
