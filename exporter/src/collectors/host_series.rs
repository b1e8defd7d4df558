//! `koji_hosts`' series. Their label sets are built once per configuration snapshot and
//! kept with it until Koji's events move, so a scrape of 2,000 hosts allocates no label
//! and encodes its 16,000 series straight from the kept label sets and this scrape's
//! values.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};

use koji_db::host_config_snapshot::{line_up, CheckIn, CheckIns, ConfigSnapshot};
use tokio_postgres::Row;

use crate::metric_families::{encode_gauge_family, encode_info_family};

/// Label set of the per-host gauges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HostLabels {
    /// Koji host name.
    pub host: Arc<String>,
}

/// Label set of `koji_host_info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HostInfoLabels {
    /// Koji host name.
    pub host: Arc<String>,
    /// Space-separated arches, as Koji stores them.
    pub arches: String,
    /// Comma-separated channel names, sorted.
    pub channels: String,
}

/// Label set of `koji_host_tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HostTaskLabels {
    /// Koji host name.
    pub host: Arc<String>,
    /// `open` or `assigned`.
    pub state: &'static str,
}

/// Koji's numbers for the task states a host can hold, and their label values.
pub const HOST_TASK_STATES: [(i32, &str); 2] = [(1, "open"), (4, "assigned")];

/// One host's label sets.
#[derive(Debug)]
struct HostSeriesLabels {
    host: HostLabels,
    info: HostInfoLabels,
    tasks: [HostTaskLabels; 2],
}

/// One host as its series need it: the configuration values and the label sets.
#[derive(Debug)]
struct KnownHost {
    capacity: f64,
    enabled: bool,
    labels: HostSeriesLabels,
}

/// Every configured host of one snapshot as its series need it, ordered by name.
#[derive(Debug)]
pub struct KnownHosts {
    hosts: Vec<KnownHost>,
    position_by_id: HashMap<i32, usize>,
}

impl KnownHosts {
    /// Builds the label sets of `snapshot`'s hosts, keeping nothing else of it.
    pub fn new(snapshot: ConfigSnapshot) -> KnownHosts {
        let (configured, position_by_id) = snapshot.into_parts();
        let hosts = configured
            .into_iter()
            .map(|host| {
                // One allocation per host name, shared by its eight series.
                let name = Arc::new(host.name);
                KnownHost {
                    capacity: host.capacity,
                    enabled: host.enabled,
                    labels: HostSeriesLabels {
                        host: HostLabels { host: name.clone() },
                        info: HostInfoLabels {
                            host: name.clone(),
                            arches: host.arches,
                            channels: host.channels.join(","),
                        },
                        tasks: HOST_TASK_STATES.map(|(_, state)| HostTaskLabels {
                            host: name.clone(),
                            state,
                        }),
                    },
                }
            })
            .collect();
        KnownHosts {
            hosts,
            position_by_id,
        }
    }

    /// How many hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Where host `id` is among them.
    pub fn position(&self, id: i32) -> Option<usize> {
        self.position_by_id.get(&id).copied()
    }

    /// The rows of the check-in query lined up with these hosts; `Err` with the id of a
    /// host whose name differs (see [`line_up`]).
    pub fn line_up(&self, check_in_rows: &[Row]) -> Result<CheckIns, i32> {
        line_up(check_in_rows, self.hosts.len(), |id| {
            let position = self.position(id)?;
            Some((position, self.hosts[position].labels.host.host.as_str()))
        })
    }
}

/// One scrape of `koji_hosts`: the kept hosts, their check-ins and their active tasks
/// (open, assigned), both lined up with the kept hosts.
#[derive(Debug)]
pub struct HostSeries {
    /// The hosts and their label sets.
    pub known: Arc<KnownHosts>,
    /// This scrape's check-ins; a host without one has no series.
    pub check_ins: CheckIns,
    /// Active tasks per host, in [`HOST_TASK_STATES`] order.
    pub tasks: Vec<[f64; 2]>,
}

impl HostSeries {
    /// Each checked-in host, its check-in and its tasks.
    fn rows(&self) -> impl Iterator<Item = (&KnownHost, CheckIn, [f64; 2])> + '_ {
        self.check_ins
            .iter()
            .zip(&self.known.hosts)
            .zip(&self.tasks)
            .filter_map(|((check_in, host), tasks)| Some((host, (*check_in)?, *tasks)))
    }
}

impl Collector for HostSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let encoder = &mut encoder;
        encode_gauge_family(
            encoder,
            "koji_host_capacity",
            "Task weight the Koji scheduler may assign to the host at once.",
            self.rows()
                .map(|(host, _, _)| (&host.labels.host, host.capacity)),
        )?;
        encode_gauge_family(
            encoder,
            "koji_host_task_load",
            "Weight of the tasks the host reported running at its last check-in.",
            self.rows()
                .map(|(host, check_in, _)| (&host.labels.host, check_in.task_load)),
        )?;
        encode_gauge_family(
            encoder,
            "koji_host_ready",
            "Whether the host reported itself ready for tasks (0 when, e.g., short of disk space).",
            self.rows().map(|(host, check_in, _)| {
                (&host.labels.host, f64::from(u8::from(check_in.ready)))
            }),
        )?;
        encode_gauge_family(
            encoder,
            "koji_host_enabled",
            "Whether the host is enabled in Koji.",
            self.rows()
                .map(|(host, _, _)| (&host.labels.host, f64::from(u8::from(host.enabled)))),
        )?;
        encode_gauge_family(
            encoder,
            "koji_host_last_update_timestamp_seconds",
            "When the host last checked in with the hub (host.update_time, Koji 1.33+).",
            self.rows()
                .filter_map(|(host, check_in, _)| Some((&host.labels.host, check_in.last_update?))),
        )?;
        encode_info_family(
            encoder,
            "koji_host_info",
            "Koji host metadata: arches and channels.",
            self.rows().map(|(host, _, _)| &host.labels.info),
        )?;
        encode_gauge_family(
            encoder,
            "koji_host_tasks",
            "Active tasks on the host by state (open, assigned).",
            self.rows()
                .flat_map(|(host, _, tasks)| host.labels.tasks.iter().zip(tasks)),
        )
    }
}
