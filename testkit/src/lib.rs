//! Koji-shaped PostgreSQL databases for tests and benchmarks.
//!
//! - [`schema`]: the Koji versions we model and the SQL that creates each layout.
//! - [`test_db`]: a fresh database per test on the local server, dropped afterwards.
//! - [`populate`]: precise rows for assertions (hosts, tasks, users).
//! - [`generate`]: realistic data at a chosen scale, millions of finished tasks included.
//! - [`mounts`]: tmpfs and bind mounts for tests, undone on drop.
//! - [`cluster`]: a private PostgreSQL cluster that a test may stop and restart.
//! - [`koji_hub`]: Koji's real hub (its schema, server and command line) for tests.
//! - [`ports`]: free TCP ports outside the ephemeral range.
//!
//! The local server is `host=127.0.0.1 port=5432 user=postgres` unless
//! `KOJI_TEST_PG_URL` says otherwise.

pub mod certs;
pub mod cluster;
pub mod examples;
pub mod generate;
pub mod koji_hub;
pub mod mounts;
pub mod populate;
pub mod ports;
pub mod schema;
pub mod smtp_sink;
pub mod test_db;

pub use cluster::TempCluster;
pub use generate::{generate, Scale};
pub use koji_hub::KojiHub;
pub use populate::{HostSpec, TaskSpec, TaskState};
pub use ports::free_port;
pub use schema::KojiVersion;
pub use test_db::TestDb;
