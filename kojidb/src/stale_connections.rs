//! What a stale connection is, written once for the exporter's count and the fix.
//!
//! `koji_db_stale_connections` fires `KojiDatabaseStaleConnections`, whose fix is
//! `terminate_stale_connections`. If the two disagreed on what is stale, the alert would
//! keep firing after a successful fix (counting connections the fix must not touch) or the
//! fix would act on connections the alert never counted. Both therefore build their SQL
//! from [`condition`].

/// The SQL condition, over `pg_stat_activity` or the function behind it
/// (`pg_stat_get_activity(NULL)`, which has no `datname`), that a connection is stale: a client
/// backend of the hub's own database (the one the session is connected to) whose last
/// query started longer ago than `threshold_seconds` (a placeholder such as `$2`, bound to
/// a `float8` number of seconds). Backends of other databases on the same server and
/// backends that never ran a query (`query_start` is NULL) are never stale.
pub fn condition(threshold_seconds: &str) -> String {
    format!(
        "(backend_type = 'client backend' \
          AND datid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
          AND query_start < now() - make_interval(secs => {threshold_seconds}))"
    )
}

#[cfg(test)]
mod tests {
    use super::condition;

    #[test]
    fn names_the_placeholder_it_is_given() {
        let sql = condition("$7");
        assert!(sql.contains("make_interval(secs => $7)"), "{sql}");
        assert!(sql.contains("WHERE datname = current_database()"), "{sql}");
        assert!(sql.starts_with('(') && sql.ends_with(')'), "{sql}");
    }
}
