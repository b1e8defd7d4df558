//! `koji_hosts`' series: eight per host, 16,000 at a large hub. Their label text is
//! escaped once per configuration snapshot and kept with it until Koji's host tables
//! change, and a scrape writes each series as name, kept label text and this scrape's
//! value. Written this way they cost a fraction of encoding the same label sets through
//! prometheus-client every scrape (bench/README.md); the text is byte for byte what
//! prometheus-client writes for them, in both formats (the tests below compare the two).

use std::collections::HashMap;
use std::sync::Arc;

use koji_db::host_config_snapshot::{place_check_in, CheckIn, CheckIns, ConfigSnapshot};
use tokio_postgres::Row;

use crate::exposition::{Format, WritesText};

/// A family's full name and help text.
type Family = (&'static str, &'static str);

const CAPACITY: Family = (
    "koji_host_capacity",
    "Task weight the Koji scheduler may assign to the host at once.",
);
const TASK_LOAD: Family = (
    "koji_host_task_load",
    "Weight of the tasks the host reported running at its last check-in.",
);
const READY: Family = (
    "koji_host_ready",
    "Whether the host reported itself ready for tasks (0 when, e.g., short of disk space).",
);
const ENABLED: Family = ("koji_host_enabled", "Whether the host is enabled in Koji.");
const LAST_UPDATE: Family = (
    "koji_host_last_update_timestamp_seconds",
    "When the host last checked in with the hub (host.update_time, Koji 1.33+).",
);
const INFO: Family = ("koji_host_info", "Koji host metadata: arches and channels.");
const TASKS: Family = (
    "koji_host_tasks",
    "Active tasks on the host by state (open, assigned).",
);

/// Koji's numbers for the task states a host can hold, and their label values.
pub const HOST_TASK_STATES: [(i32, &str); 2] = [(1, "open"), (4, "assigned")];

/// One host as its series need it: the configuration values and the escaped label text.
#[derive(Debug)]
struct KnownHost {
    /// The name as Koji stores it, to recognise the host's check-in row.
    name: String,
    /// The name escaped as a label value, when escaping changed it.
    escaped_name: Option<String>,
    /// The rest of `koji_host_info`'s labels: `",arches=\"…\",channels=\"…\""`.
    info_labels: String,
    capacity: f64,
    enabled: bool,
}

impl KnownHost {
    /// The name as a label value.
    fn label_value(&self) -> &str {
        self.escaped_name.as_deref().unwrap_or(&self.name)
    }
}

/// Every configured host of one snapshot as its series need it, ordered by name.
#[derive(Debug)]
pub struct KnownHosts {
    hosts: Vec<KnownHost>,
    position_by_id: HashMap<i32, usize>,
}

impl KnownHosts {
    /// Escapes the label text of `snapshot`'s hosts, keeping nothing else of it.
    pub fn new(snapshot: ConfigSnapshot) -> KnownHosts {
        let (configured, position_by_id) = snapshot.into_parts();
        let hosts = configured
            .into_iter()
            .map(|host| {
                let escaped = escape_label_value(&host.name);
                let escaped_name = (escaped != host.name).then_some(escaped);
                let mut info_labels = String::from(",arches=\"");
                info_labels.push_str(&escape_label_value(&host.arches));
                info_labels.push_str("\",channels=\"");
                info_labels.push_str(&escape_label_value(&host.channels.join(",")));
                info_labels.push('"');
                KnownHost {
                    name: host.name,
                    escaped_name,
                    info_labels,
                    capacity: host.capacity,
                    enabled: host.enabled,
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

    /// One check-in row's host position and check-in (see [`place_check_in`]).
    pub fn place(&self, row: &Row) -> Result<Option<(usize, CheckIn)>, i32> {
        place_check_in(row, |id| {
            let position = self.position(id)?;
            Some((position, self.hosts[position].name.as_str()))
        })
    }
}

/// One scrape of `koji_hosts`: the kept hosts, their check-ins and their active tasks
/// (open, assigned), both lined up with the kept hosts.
#[derive(Debug)]
pub struct HostSeries {
    /// The hosts and their label text.
    pub known: Arc<KnownHosts>,
    /// This scrape's check-ins; a host without one has no series.
    pub check_ins: CheckIns,
    /// Active tasks per host, in [`HOST_TASK_STATES`] order.
    pub tasks: Vec<[f64; 2]>,
}

/// A sample's value: a measurement, or the constant 1 of an info series.
#[derive(Debug, Clone, Copy)]
enum Value {
    Gauge(f64),
    One,
}

/// The labels after `host` in one series, already escaped.
type MoreLabels<'a> = &'a str;

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

impl WritesText for HostSeries {
    fn write_text(&self, out: &mut dyn std::fmt::Write, format: Format) -> std::fmt::Result {
        let mut writer = ChunkWriter::new(out, format);
        let gauge = |value: f64| Value::Gauge(value);
        writer.family(
            CAPACITY,
            self.rows()
                .map(|(host, _, _)| (host, "", gauge(host.capacity))),
        )?;
        writer.family(
            TASK_LOAD,
            self.rows()
                .map(|(host, check_in, _)| (host, "", gauge(check_in.task_load))),
        )?;
        writer.family(
            READY,
            self.rows()
                .map(|(host, check_in, _)| (host, "", gauge(f64::from(u8::from(check_in.ready))))),
        )?;
        writer.family(
            ENABLED,
            self.rows()
                .map(|(host, _, _)| (host, "", gauge(f64::from(u8::from(host.enabled))))),
        )?;
        writer.family(
            LAST_UPDATE,
            self.rows()
                .filter_map(|(host, check_in, _)| Some((host, "", gauge(check_in.last_update?)))),
        )?;
        writer.family(
            INFO,
            self.rows()
                .map(|(host, _, _)| (host, host.info_labels.as_str(), Value::One)),
        )?;
        const STATE_LABELS: [&str; 2] = [",state=\"open\"", ",state=\"assigned\""];
        writer.family(
            TASKS,
            self.rows().flat_map(|(host, _, tasks)| {
                STATE_LABELS
                    .into_iter()
                    .zip(tasks)
                    .map(move |(labels, count)| (host, labels, gauge(count)))
            }),
        )?;
        writer.flush()
    }
}

/// Size at which the writer hands its text on: the compressor works on chunks, not on
/// each of the series' small pieces.
const CHUNK: usize = 4 * 1024;

/// Writes families of host series in `format`, in chunks of about [`CHUNK`] bytes.
struct ChunkWriter<'a> {
    out: &'a mut dyn std::fmt::Write,
    format: Format,
    buffer: String,
}

impl<'a> ChunkWriter<'a> {
    fn new(out: &'a mut dyn std::fmt::Write, format: Format) -> Self {
        ChunkWriter {
            out,
            format,
            buffer: String::with_capacity(2 * CHUNK),
        }
    }

    /// One gauge family named `name` in full (an `_info` name is an info family, a
    /// `_seconds` name carries OpenMetrics' unit line); left out without samples, as
    /// prometheus-client leaves out an empty family.
    fn family<'h>(
        &mut self,
        (name, help): Family,
        samples: impl Iterator<Item = (&'h KnownHost, MoreLabels<'h>, Value)>,
    ) -> std::fmt::Result {
        let mut samples = samples.peekable();
        if samples.peek().is_none() {
            return Ok(());
        }
        self.descriptor(name, help);
        let mut number = dtoa::Buffer::new();
        for (host, more_labels, value) in samples {
            let buffer = &mut self.buffer;
            buffer.push_str(name);
            buffer.push_str("{host=\"");
            buffer.push_str(host.label_value());
            buffer.push('"');
            buffer.push_str(more_labels);
            buffer.push_str("} ");
            match value {
                Value::One => buffer.push('1'),
                Value::Gauge(value) => {
                    buffer.push_str(format_value(&mut number, value, self.format))
                }
            }
            buffer.push('\n');
            if self.buffer.len() >= CHUNK {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// `# HELP`, `# TYPE` and, in OpenMetrics for a unit suffix, `# UNIT`.
    fn descriptor(&mut self, name: &str, help: &str) {
        let buffer = &mut self.buffer;
        buffer.push_str("# HELP ");
        buffer.push_str(name);
        buffer.push(' ');
        match self.format {
            Format::OpenMetrics => buffer.push_str(help),
            Format::PrometheusText => buffer.push_str(&escape_help(help)),
        }
        buffer.push_str("\n# TYPE ");
        buffer.push_str(name);
        buffer.push_str(" gauge\n");
        if let (Format::OpenMetrics, Some(_)) = (self.format, name.strip_suffix("_seconds")) {
            buffer.push_str("# UNIT ");
            buffer.push_str(name);
            buffer.push_str(" seconds\n");
        }
    }

    fn flush(&mut self) -> std::fmt::Result {
        self.out.write_str(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }
}

/// A gauge value as prometheus-client writes it in `format`.
fn format_value(number: &mut dtoa::Buffer, value: f64, format: Format) -> &str {
    match format {
        Format::OpenMetrics => number.format(value),
        Format::PrometheusText if value.is_nan() => "NaN",
        Format::PrometheusText if value == f64::INFINITY => "+Inf",
        Format::PrometheusText if value == f64::NEG_INFINITY => "-Inf",
        Format::PrometheusText => number.format_finite(value),
    }
}

/// A label value escaped as both formats escape it: backslash, double quote, newline.
fn escape_label_value(value: &str) -> String {
    escape(value, |c| matches!(c, '\\' | '"' | '\n'))
}

/// Help text escaped as the classic text format escapes it: backslash and newline.
fn escape_help(help: &str) -> std::borrow::Cow<'_, str> {
    if help.contains(['\\', '\n']) {
        std::borrow::Cow::Owned(escape(help, |c| matches!(c, '\\' | '\n')))
    } else {
        std::borrow::Cow::Borrowed(help)
    }
}

fn escape(text: &str, special: impl Fn(char) -> bool) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' if special(c) => escaped.push_str("\\n"),
            c if special(c) => {
                escaped.push('\\');
                escaped.push(c);
            }
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{Exposition, ExpositionWriter, Part};
    use crate::metric_families::{Gauges, Infos};
    use koji_db::Host;
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::registry::Registry;

    #[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
    struct HostLabels {
        host: String,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
    struct HostInfoLabels {
        host: String,
        arches: String,
        channels: String,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
    struct HostTaskLabels {
        host: String,
        state: &'static str,
    }

    fn host(id: i32, name: &str, last_update: Option<f64>, task_load: f64) -> Host {
        Host {
            id,
            name: name.into(),
            arches: "x86_64 i686".into(),
            capacity: 2.0 + f64::from(id),
            task_load,
            ready: id % 2 == 0,
            enabled: id % 3 != 0,
            last_update,
            channels: vec!["default".into(), "q\"uote\\back\nnew-λ".into()],
        }
    }

    /// The same hosts through prometheus-client's label sets, as `koji_hosts` encoded them
    /// before: the reference the written text must equal.
    fn reference(hosts: &[Host], tasks: &[[f64; 2]]) -> Registry {
        let mut sorted: Vec<(&Host, [f64; 2])> = hosts.iter().zip(tasks.iter().copied()).collect();
        sorted.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let labels = |host: &Host| HostLabels {
            host: host.name.clone(),
        };
        let mut capacity = Gauges::new(CAPACITY.0, CAPACITY.1);
        let mut task_load = Gauges::new(TASK_LOAD.0, TASK_LOAD.1);
        let mut ready = Gauges::new(READY.0, READY.1);
        let mut enabled = Gauges::new(ENABLED.0, ENABLED.1);
        let mut last_update = Gauges::new(LAST_UPDATE.0, LAST_UPDATE.1);
        let mut info = Infos::new(INFO.0, INFO.1);
        let mut host_tasks = Gauges::new(TASKS.0, TASKS.1);
        for (host, counts) in sorted {
            capacity.push(labels(host), host.capacity);
            task_load.push(labels(host), host.task_load);
            ready.push(labels(host), f64::from(u8::from(host.ready)));
            enabled.push(labels(host), f64::from(u8::from(host.enabled)));
            if let Some(seconds) = host.last_update {
                last_update.push(labels(host), seconds);
            }
            info.push(HostInfoLabels {
                host: host.name.clone(),
                arches: host.arches.clone(),
                channels: host.channels.join(","),
            });
            for ((_, state), count) in HOST_TASK_STATES.into_iter().zip(counts) {
                host_tasks.push(
                    HostTaskLabels {
                        host: host.name.clone(),
                        state,
                    },
                    count,
                );
            }
        }
        let mut registry = Registry::default();
        for family in [
            capacity.boxed(),
            task_load.boxed(),
            ready.boxed(),
            enabled.boxed(),
            last_update.boxed(),
            info.boxed(),
            host_tasks.boxed(),
        ] {
            registry.register_collector(family);
        }
        registry
    }

    fn series(hosts: &[Host], tasks: &[[f64; 2]]) -> HostSeries {
        let (snapshot, check_ins) = ConfigSnapshot::from_hosts(hosts.to_vec());
        let known = KnownHosts::new(snapshot);
        let mut lined_up = vec![[0.0; 2]; known.len()];
        for (host, counts) in hosts.iter().zip(tasks) {
            lined_up[known.position(host.id).unwrap()] = *counts;
        }
        HostSeries {
            known: Arc::new(known),
            check_ins,
            tasks: lined_up,
        }
    }

    fn both_ways(hosts: &[Host], tasks: &[[f64; 2]]) {
        let writer = ExpositionWriter::default();
        for format in [Format::OpenMetrics, Format::PrometheusText] {
            let mut written = Exposition::default();
            written.push(Part::Text(Box::new(series(hosts, tasks))));
            let mut encoded = Exposition::default();
            encoded.push(Part::Registry(reference(hosts, tasks)));
            assert_eq!(
                writer.text(&written, format),
                writer.text(&encoded, format),
                "{format:?}"
            );
        }
    }

    #[test]
    fn written_text_is_what_prometheus_client_encodes() {
        let mut hosts: Vec<Host> = (1..=700)
            .map(|id| {
                let name = format!("buildvm-{:03}.example.org", 701 - id);
                host(
                    id,
                    &name,
                    Some(1_764_500_000.25 + f64::from(id)),
                    0.5 * f64::from(id),
                )
            })
            .collect();
        hosts.push(host(800, "q\"uote\\back\nnew-λ", None, f64::NAN));
        hosts.push(host(
            801,
            "infinite",
            Some(f64::INFINITY),
            f64::NEG_INFINITY,
        ));
        hosts.push(host(802, "huge", Some(1e300), 1e-7));
        let tasks: Vec<[f64; 2]> = (0..hosts.len()).map(|n| [n as f64 % 3.0, 1.0]).collect();
        both_ways(&hosts, &tasks);
    }

    #[test]
    fn families_without_samples_are_left_out_as_prometheus_client_does() {
        // No host has checked in since 1.33's update_time: no timestamp family at all.
        let hosts = [host(1, "a", None, 0.0), host(2, "b", None, 1.0)];
        both_ways(&hosts, &[[0.0, 0.0], [2.0, 0.0]]);
        // No host at all: nothing.
        both_ways(&[], &[]);
        let empty = series(&[], &[]);
        let mut text = String::new();
        empty.write_text(&mut text, Format::OpenMetrics).unwrap();
        assert_eq!(text, "");
    }

    #[test]
    fn a_host_without_check_in_has_no_series() {
        let (snapshot, _) = ConfigSnapshot::from_hosts(vec![host(1, "a", None, 0.0)]);
        let known = Arc::new(KnownHosts::new(snapshot));
        let silent = HostSeries {
            known,
            check_ins: vec![None],
            tasks: vec![[0.0; 2]],
        };
        let mut text = String::new();
        silent.write_text(&mut text, Format::OpenMetrics).unwrap();
        assert_eq!(text, "");
    }
}
