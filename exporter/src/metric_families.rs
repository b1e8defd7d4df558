//! Snapshots of metric families, made during collection and encoded afterwards.
//!
//! prometheus-client's `Collector::encode` cannot await, so collectors first gather their
//! values asynchronously into these plain structures, and the scrape then registers them
//! in a fresh registry and encodes them synchronously.

use std::fmt::Debug;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// The metric families one collector produced in one scrape.
pub type Families = Vec<Box<dyn Collector>>;

/// The empty label set, for families with a single unlabelled sample.
pub type NoLabels = [(&'static str, &'static str); 0];

/// A gauge family: one value per label set.
#[derive(Debug)]
pub struct Gauges<L> {
    name: &'static str,
    help: &'static str,
    samples: Vec<(L, f64)>,
}

impl<L: EncodeLabelSet + Debug + Send + Sync + 'static> Gauges<L> {
    /// A family named `name` in full (with its unit suffix, if any, as users query it).
    pub fn new(name: &'static str, help: &'static str) -> Self {
        Gauges {
            name,
            help,
            samples: Vec::new(),
        }
    }

    /// Adds one sample.
    pub fn push(&mut self, labels: L, value: f64) {
        self.samples.push((labels, value));
    }

    /// Adds one sample and returns the family, for chaining.
    pub fn with(mut self, labels: L, value: f64) -> Self {
        self.push(labels, value);
        self
    }

    /// Boxes the family for a collector's result.
    pub fn boxed(self) -> Box<dyn Collector> {
        Box::new(self)
    }
}

impl Gauges<NoLabels> {
    /// A family with a single unlabelled sample.
    pub fn single(name: &'static str, help: &'static str, value: f64) -> Box<dyn Collector> {
        Gauges::<NoLabels>::new(name, help).with([], value).boxed()
    }
}

/// Splits the unit suffix off a metric name, so the encoder writes it back together with an
/// OpenMetrics `# UNIT` line.
fn split_unit(name: &str) -> (&str, Option<Unit>) {
    for (suffix, unit) in [("_seconds", Unit::Seconds), ("_bytes", Unit::Bytes)] {
        if let Some(base) = name.strip_suffix(suffix) {
            return (base, Some(unit));
        }
    }
    (name, None)
}

impl<L: EncodeLabelSet + Debug + Send + Sync + 'static> Collector for Gauges<L> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let samples = self.samples.iter().map(|(labels, value)| (labels, *value));
        encode_gauge_family(&mut encoder, self.name, self.help, samples)
    }
}

/// Encodes one gauge family named `name` in full. A family without samples (say, update
/// times on a schema that has none) is left out rather than announced empty.
fn encode_gauge_family<'a, L, V>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (&'a L, V)>,
) -> Result<(), std::fmt::Error>
where
    L: EncodeLabelSet + 'a,
    V: EncodeGaugeValue,
{
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let (base, unit) = split_unit(name);
    let mut family = encoder.encode_descriptor(base, help, unit.as_ref(), MetricType::Gauge)?;
    for (labels, value) in samples {
        family.encode_family(labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// Encodes one info family (see [`Infos`]); left out when empty.
fn encode_info_family<'a, L: EncodeLabelSet + 'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = &'a L>,
) -> Result<(), std::fmt::Error> {
    debug_assert!(name.ends_with("_info"));
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    // Not split: an info name carries no unit.
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for labels in samples {
        family.encode_family(labels)?.encode_gauge(&1i64)?;
    }
    Ok(())
}

/// An info family: metadata carried in labels, value always 1, name ending in `_info`.
#[derive(Debug)]
pub struct Infos<L> {
    name: &'static str,
    help: &'static str,
    samples: Vec<L>,
}

impl<L: EncodeLabelSet + Debug + Send + Sync + 'static> Infos<L> {
    /// A family named `name` in full; it must end in `_info`.
    pub fn new(name: &'static str, help: &'static str) -> Self {
        debug_assert!(name.ends_with("_info"));
        Infos {
            name,
            help,
            samples: Vec::new(),
        }
    }

    /// Adds one label set.
    pub fn push(&mut self, labels: L) {
        self.samples.push(labels);
    }

    /// Adds one label set and returns the family, for chaining.
    pub fn with(mut self, labels: L) -> Self {
        self.push(labels);
        self
    }

    /// Boxes the family for a collector's result.
    pub fn boxed(self) -> Box<dyn Collector> {
        Box::new(self)
    }
}

impl<L: EncodeLabelSet + Debug + Send + Sync + 'static> Collector for Infos<L> {
    /// Encoded as a gauge of value 1, as node_exporter does: the classic text format,
    /// promtool and many tools in between have no `info` type.
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_info_family(&mut encoder, self.name, self.help, &self.samples)
    }
}

/// A counter family: one monotonically increasing total per label set.
#[derive(Debug)]
pub struct Counters<L> {
    name: &'static str,
    help: &'static str,
    samples: Vec<(L, f64)>,
}

impl<L: EncodeLabelSet + Debug + Send + Sync + 'static> Counters<L> {
    /// A family named `name` in full; it must end in `_total`.
    pub fn new(name: &'static str, help: &'static str) -> Self {
        debug_assert!(name.ends_with("_total"));
        Counters {
            name,
            help,
            samples: Vec::new(),
        }
    }

    /// Adds one sample and returns the family, for chaining.
    pub fn with(mut self, labels: L, value: f64) -> Self {
        self.samples.push((labels, value));
        self
    }

    /// Boxes the family for a collector's result.
    pub fn boxed(self) -> Box<dyn Collector> {
        Box::new(self)
    }
}

impl<L: EncodeLabelSet + Debug + Send + Sync + 'static> Collector for Counters<L> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if self.samples.is_empty() {
            return Ok(());
        }
        // The encoder appends `_total` itself.
        let base = self.name.strip_suffix("_total").unwrap_or(self.name);
        let mut family = encoder.encode_descriptor(base, self.help, None, MetricType::Counter)?;
        for (labels, value) in &self.samples {
            family
                .encode_family(labels)?
                .encode_counter::<NoLabels, _, f64>(value, None)?;
        }
        Ok(())
    }
}
