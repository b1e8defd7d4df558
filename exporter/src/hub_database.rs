//! The connection pool to the Koji hub database, tuned so that a dead or hung database
//! costs a scrape no more than its timeout.
//!
//! Every connection is read-only, names itself `koji-exporter` in `pg_stat_activity`, and
//! carries a server-side `statement_timeout`, so a query the scrape gave up on does not
//! keep running, and a `lock_timeout`, so a statement waiting for a lock does not hold the
//! others of its scrape queued behind it on the same connection. A pooled connection is
//! verified before reuse, which is how the pool notices a restarted server and reconnects
//! without the exporter restarting.

use std::time::Duration;

use std::sync::{Arc, Mutex};

use deadpool_postgres::{Object, Pool};
use koji_db::pool::{build_pool, PoolBuildError, PoolSettings};
use koji_db::{layout_from_row, Layout, DETECT_LAYOUT};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::config::{Config, DB_URL_ENV};

/// Why the hub database could not be set up or reached.
#[derive(Debug, thiserror::Error)]
pub enum HubDatabaseError {
    /// The pool could not be built (a bad URL, an unreadable password file).
    #[error(transparent)]
    Pool(#[from] PoolBuildError),
    /// A query failed.
    #[error("query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// The Koji schema could not be read.
    #[error(transparent)]
    Koji(#[from] koji_db::KojiDbError),
    /// The layout query returned no row.
    #[error("the layout query returned no row")]
    NoLayoutRow,
    /// No connection could be had (refused, timed out, authentication failed).
    #[error("hub database unavailable: {0}")]
    Unavailable(#[from] deadpool_postgres::PoolError),
}

/// A pool of connections to the hub database, and the schema layout last seen there.
#[derive(Debug, Clone)]
pub struct HubDatabase {
    pool: Pool,
    layout: Arc<Mutex<Option<Layout>>>,
}

impl HubDatabase {
    /// Builds the pool; connects lazily, so a database that is down now is no error.
    pub fn new(config: &Config) -> Result<HubDatabase, HubDatabaseError> {
        let url_source = if std::env::var(DB_URL_ENV).is_ok_and(|v| !v.is_empty()) {
            DB_URL_ENV
        } else {
            "database.url"
        };
        let url = config.database_url();
        let connect_timeout = config.database.connect_timeout;
        let statement_timeout = config.web.scrape_timeout.as_millis();
        // A scrape's collectors share one connection (see `CollectContext::hub_client`): a
        // statement waiting for a lock held by DDL or `VACUUM FULL` gives up after a quarter
        // of the scrape, at most a second (Prometheus may shorten the scrape below the
        // configured one), so the statements queued behind it still answer in time.
        let lock_timeout = (statement_timeout / 4).clamp(1, 1000);
        let pool = build_pool(&PoolSettings {
            url: &url,
            url_source,
            password_file: config.database.password_file.as_deref(),
            password_key: "database.password_file",
            application_name: "koji-exporter",
            options: Some(format!(
                "-c default_transaction_read_only=on -c statement_timeout={statement_timeout} \
                 -c lock_timeout={lock_timeout}"
            )),
            connect_timeout,
            recycle_timeout: connect_timeout.min(Duration::from_secs(1)),
            size: config.database.pool_size,
        })?;
        Ok(HubDatabase {
            pool,
            layout: Arc::default(),
        })
    }

    /// A verified connection, or an error within the connect timeout.
    pub async fn client(&self) -> Result<HubClient, HubDatabaseError> {
        Ok(HubClient {
            object: self.pool.get().await?,
        })
    }

    /// Detects the Koji layout afresh and remembers it for [`HubDatabase::layout`].
    pub async fn detect_layout(&self, client: &HubClient) -> Result<Layout, HubDatabaseError> {
        let row = client.query(DETECT_LAYOUT, &[]).await?;
        let row = row.first().ok_or(HubDatabaseError::NoLayoutRow)?;
        let detected = layout_from_row(row);
        *self.layout.lock().expect("layout lock") = detected.as_ref().ok().copied();
        Ok(detected?)
    }

    /// The layout remembered from an earlier detection, else detected now. Koji upgrades
    /// change the layout under a running exporter: a failing query forgets it (see
    /// [`HubDatabase::forget_layout`]) so the next scrape looks again.
    pub async fn layout(&self, client: &HubClient) -> Result<Layout, HubDatabaseError> {
        let remembered = *self.layout.lock().expect("layout lock");
        match remembered {
            Some(layout) => Ok(layout),
            None => self.detect_layout(client).await,
        }
    }

    /// Forgets the remembered layout.
    pub fn forget_layout(&self) {
        *self.layout.lock().expect("layout lock") = None;
    }
}

/// A pooled connection whose statements are prepared once per connection and reused,
/// saving a round trip and a parse per query. A failed query clears the connection's
/// statement cache: a Koji upgrade may have altered the tables the statements describe.
#[derive(Debug)]
pub struct HubClient {
    object: Object,
}

impl HubClient {
    /// Runs `sql` as a cached prepared statement.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let result = async {
            let statement = self.object.prepare_cached(sql).await?;
            self.object.query(&statement, params).await
        }
        .await;
        if result.is_err() {
            self.object.statement_cache.clear();
        }
        result
    }

    /// Runs `sql` (no parameters) as a cached prepared statement and hands each row to
    /// `each` as it arrives, so a large answer is never held as rows all at once.
    pub async fn for_each_row(
        &self,
        sql: &str,
        mut each: impl FnMut(Row),
    ) -> Result<(), tokio_postgres::Error> {
        use futures::TryStreamExt;
        let result = async {
            let statement = self.object.prepare_cached(sql).await?;
            let no_params: [&(dyn ToSql + Sync); 0] = [];
            let rows = self.object.query_raw(&statement, no_params).await?;
            let mut rows = std::pin::pin!(rows);
            while let Some(row) = rows.try_next().await? {
                each(row);
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            self.object.statement_cache.clear();
        }
        result
    }
}
