//! The Koji schema versions the tests model, and the SQL that creates them.

use tokio_postgres::Client;

/// Koji 1.33+ layout, from `tests/fixtures/sql/`.
const KOJI_1_33_SQL: &str = include_str!("../../tests/fixtures/sql/koji-1.33.sql");
/// Koji 1.15 (pre-1.16) layout, from `tests/fixtures/sql/`.
const KOJI_1_15_SQL: &str = include_str!("../../tests/fixtures/sql/koji-1.15.sql");

/// A Koji release whose host layout differs from its neighbours'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KojiVersion {
    /// Before 1.16: capacity in `host`, `timestamp` columns.
    V1_15,
    /// 1.16 to 1.32: versioned `host_config`, no `host.update_time`.
    V1_16,
    /// 1.33 and later: versioned `host_config` and `host.update_time`.
    V1_33,
}

impl KojiVersion {
    /// Every modelled version, oldest first.
    pub const ALL: [KojiVersion; 3] = [KojiVersion::V1_15, KojiVersion::V1_16, KojiVersion::V1_33];

    /// Whether configuration lives in the versioned `host_config` table.
    pub fn has_host_config(self) -> bool {
        self != KojiVersion::V1_15
    }

    /// Whether `host.update_time` exists.
    pub fn has_update_time(self) -> bool {
        self == KojiVersion::V1_33
    }

    /// Parses `1.15`, `1.16` or `1.33`.
    pub fn parse(text: &str) -> Option<KojiVersion> {
        match text {
            "1.15" => Some(KojiVersion::V1_15),
            "1.16" => Some(KojiVersion::V1_16),
            "1.33" => Some(KojiVersion::V1_33),
            _ => None,
        }
    }

    /// Creates this version's tables in the connected (empty) database.
    pub async fn create_schema(self, client: &Client) -> Result<(), tokio_postgres::Error> {
        match self {
            KojiVersion::V1_15 => client.batch_execute(KOJI_1_15_SQL).await,
            KojiVersion::V1_16 => {
                client.batch_execute(KOJI_1_33_SQL).await?;
                client
                    .batch_execute("ALTER TABLE host DROP COLUMN update_time")
                    .await
            }
            KojiVersion::V1_33 => client.batch_execute(KOJI_1_33_SQL).await,
        }
    }
}
