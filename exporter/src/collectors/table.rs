//! The one table of every collector: its name in flags, config and the `collector` label,
//! its default, whether it reads the hub database, and its help line. Imports nothing of the
//! crate, so configuration and flags can name collectors without pulling in how they run.

/// A collector, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CollectorId {
    /// `koji_db_up`, `koji_hub_schema_info`, `koji_db_server_start_time_seconds`.
    KojiDb,
    /// `koji_hub_up`: the hub's XML-RPC answers.
    KojiHub,
    /// Per-host capacity, load, readiness, channels and tasks.
    KojiHosts,
    /// The active task queue.
    KojiTasks,
    /// `pg_stat_activity` and connection slot settings.
    PgStatActivity,
    /// This machine's memory, OOM kills, load and CPUs.
    BuilderHealth,
    /// The mounts that hold the watched paths.
    Filesystems,
    /// Configured daemons in the process table.
    Services,
    /// The build-directory scan.
    Builddirs,
}

/// One row of the collector table.
struct CollectorEntry {
    id: CollectorId,
    name: &'static str,
    enabled_by_default: bool,
    needs_database: bool,
    help: &'static str,
}

/// The one table of every collector, its flag name and its default.
const TABLE: &[CollectorEntry] = &[
    CollectorEntry {
        id: CollectorId::KojiDb,
        name: "koji_db",
        enabled_by_default: true,
        needs_database: true,
        help: "hub database reachability, Koji schema layout, database server start time",
    },
    CollectorEntry {
        id: CollectorId::KojiHub,
        name: "koji_hub",
        enabled_by_default: true,
        needs_database: false,
        help: "whether the hub answers an XML-RPC call that reads its database (getLastEvent)",
    },
    CollectorEntry {
        id: CollectorId::KojiHosts,
        name: "koji_hosts",
        enabled_by_default: true,
        needs_database: true,
        help: "builders: capacity, task load, ready, enabled, last check-in, channels, tasks",
    },
    CollectorEntry {
        id: CollectorId::KojiTasks,
        name: "koji_tasks",
        enabled_by_default: true,
        needs_database: true,
        help: "active task queue by state and channel, oldest free task",
    },
    CollectorEntry {
        id: CollectorId::PgStatActivity,
        name: "pg_stat_activity",
        enabled_by_default: true,
        needs_database: true,
        help: "hub database connections by user and state, stale connections, slots",
    },
    CollectorEntry {
        id: CollectorId::BuilderHealth,
        name: "builder_health",
        enabled_by_default: true,
        needs_database: false,
        help: "this machine's memory, OOM kills, load average and CPUs, from /proc",
    },
    CollectorEntry {
        id: CollectorId::Filesystems,
        name: "filesystems",
        enabled_by_default: true,
        needs_database: false,
        help: "size, free space, inodes, read-only and errors of the mounts holding watched paths",
    },
    CollectorEntry {
        id: CollectorId::Services,
        name: "services",
        enabled_by_default: true,
        needs_database: false,
        help: "whether the configured daemons (kojid, kojira, httpd, ...) run, and since when",
    },
    CollectorEntry {
        id: CollectorId::Builddirs,
        name: "builddirs",
        enabled_by_default: true,
        needs_database: false,
        help: "size and stale entries of the build directories (background scan), live mounts below them",
    },
];

impl CollectorId {
    fn entry(self) -> &'static CollectorEntry {
        TABLE
            .iter()
            .find(|entry| entry.id == self)
            .expect("every collector has a table row")
    }

    /// The name used in flags, config and the `collector` label.
    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// A one-line description for `--help`.
    pub fn help(self) -> &'static str {
        self.entry().help
    }

    /// Whether the collector runs when neither config nor flags mention it.
    pub fn enabled_by_default(self) -> bool {
        self.entry().enabled_by_default
    }

    /// Looks a collector up by name.
    pub fn from_name(name: &str) -> Option<CollectorId> {
        TABLE
            .iter()
            .find(|entry| entry.name == name)
            .map(|entry| entry.id)
    }

    /// Every collector, in table order.
    pub fn all() -> impl Iterator<Item = CollectorId> {
        TABLE.iter().map(|entry| entry.id)
    }

    /// Every collector name, in table order.
    pub fn names() -> Vec<&'static str> {
        TABLE.iter().map(|entry| entry.name).collect()
    }

    /// Whether the collector reads the hub database.
    pub fn needs_database(self) -> bool {
        self.entry().needs_database
    }
}
