//! Errors of the Koji database model.

/// What can go wrong while reading the Koji hub database.
#[derive(Debug, thiserror::Error)]
pub enum KojiDbError {
    /// The database answered but has neither Koji host layout.
    #[error("not a Koji hub database: {0}")]
    NotKoji(&'static str),
    /// The query failed (connection lost, statement timeout, permissions).
    #[error("query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
}
