//! A throwaway database per test on the local PostgreSQL server.

use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::{Client, NoTls};

use crate::KojiVersion;

/// The admin connection string of the local server, overridable for other machines.
pub fn admin_url() -> String {
    std::env::var("KOJI_TEST_PG_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=postgres".into())
}

/// Connects and drives the connection on the current runtime.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A database created for one test and dropped (with its connections, and the roles made
/// for it) when this is dropped.
#[derive(Debug)]
pub struct TestDb {
    /// The database name, unique per process and test.
    pub name: String,
    /// A connection string for the database, as the local superuser.
    pub url: String,
    /// A superuser connection to the database.
    pub client: Client,
    /// Login roles made for this database's test ([`TestDb::login_role`]), dropped with it.
    roles: std::sync::Mutex<Vec<String>>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// Creates an empty database named after `prefix`.
    pub async fn empty(prefix: &str) -> anyhow::Result<TestDb> {
        let name = format!(
            "{}_{}_{}",
            prefix
                .to_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect(&admin_url()).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        let url = format!("{} dbname={name}", base_url());
        let client = connect(&url).await?;
        Ok(TestDb {
            name,
            url,
            client,
            roles: std::sync::Mutex::default(),
        })
    }

    /// Makes a login role `<database>_<suffix>` for this test alone (roles are cluster-wide)
    /// and returns its name; it is dropped after the database.
    pub async fn login_role(&self, suffix: &str) -> anyhow::Result<String> {
        let role = format!("{}_{suffix}", self.name);
        self.client
            .batch_execute(&format!("CREATE ROLE \"{role}\" LOGIN"))
            .await?;
        self.roles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(role.clone());
        Ok(role)
    }

    /// Creates a database with the tables of the given Koji version.
    pub async fn koji(prefix: &str, version: KojiVersion) -> anyhow::Result<TestDb> {
        let db = TestDb::empty(prefix).await?;
        version.create_schema(&db.client).await?;
        Ok(db)
    }
}

/// The admin URL without its `dbname`, so a database name can be appended.
fn base_url() -> String {
    admin_url()
        .split_whitespace()
        .filter(|part| !part.starts_with("dbname="))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on itself: use a thread
        // with a runtime of its own.
        let name = self.name.clone();
        let roles = std::mem::take(&mut *self.roles.lock().unwrap_or_else(|e| e.into_inner()));
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for dropping the test database");
            runtime.block_on(async move {
                if let Ok(admin) = connect(&admin_url()).await {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                    for role in roles {
                        let _ = admin
                            .batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""))
                            .await;
                    }
                }
            });
        })
        .join();
    }
}
