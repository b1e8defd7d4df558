//! One scrape: run the enabled collectors concurrently under a deadline, then write the
//! result out (see [`crate::exposition`]).
//!
//! A collector that fails or misses the deadline loses only its own metrics and reports
//! `koji_exporter_collector_success 0`; the scrape always answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use crate::collectors::{CollectContext, CollectError, Collected, CollectorId, CollectorState};
use crate::config::Config;
pub use crate::exposition::Format;
use crate::exposition::{Exposition, ExpositionWriter, Part};
use crate::hub_database::HubDatabase;
use crate::metric_families::{Counters, Gauges, Infos, NoLabels};
use koji_config::error_chain::error_chain;

/// Label set of the per-collector self metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CollectorLabels {
    /// Collector name.
    pub collector: String,
}

/// Label set of `koji_exporter_build_info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct BuildLabels {
    /// Crate version.
    pub version: String,
}

/// Everything a scrape needs, shared by all requests.
#[derive(Debug)]
pub struct Scraper {
    config: Arc<Config>,
    hub: Option<HubDatabase>,
    collectors: Vec<CollectorId>,
    state: Arc<CollectorState>,
    /// Last outcome per collector, so failures are logged when they start and end, not on
    /// every scrape.
    last_success: Mutex<HashMap<CollectorId, bool>>,
    /// What writing one answer keeps for the next.
    writer: ExpositionWriter,
}

impl Scraper {
    /// A scraper running `collectors` against `hub`.
    pub fn new(
        config: Arc<Config>,
        hub: Option<HubDatabase>,
        collectors: Vec<CollectorId>,
    ) -> Self {
        Scraper {
            config,
            hub,
            collectors,
            state: Arc::default(),
            last_success: Mutex::new(HashMap::new()),
            writer: ExpositionWriter::default(),
        }
    }

    /// Starts what runs between scrapes (the build-directory scanner, when its collector is
    /// enabled); `run` calls this, tests that scrape directly may too.
    pub fn start_background_tasks(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        if self.collectors.contains(&CollectorId::Builddirs) {
            tasks.push(self.state.builddirs.spawn(self.config.builddirs.clone()));
        }
        tasks
    }

    /// Runs one build-directory scan now and waits for it (tests, and the first scan).
    pub async fn scan_build_dirs_now(&self) {
        self.state.builddirs.scan_all(&self.config.builddirs).await;
    }

    /// The listener's limits (`[web]`).
    pub fn listener_limits(&self) -> koji_tls::Limits {
        self.config.web.limits()
    }

    /// Upper bound of one scrape (`web.scrape_timeout`).
    pub fn timeout(&self) -> Duration {
        self.config.web.scrape_timeout
    }

    /// Collects everything within `timeout` and encodes it in `format`.
    pub async fn scrape(&self, timeout: Duration, format: Format) -> String {
        let exposition = self.collect(timeout).await;
        self.writer.text(&exposition, format)
    }

    /// Collects everything within `timeout` and encodes it in `format`, compressed with
    /// gzip.
    pub async fn scrape_gzip(&self, timeout: Duration, format: Format) -> Vec<u8> {
        let exposition = self.collect(timeout).await;
        self.writer.gzip(&exposition, format)
    }

    /// Collects everything within `timeout`: each collector's families in collector order,
    /// then the exporter's own.
    async fn collect(&self, timeout: Duration) -> Exposition {
        let started = Instant::now();
        let context = CollectContext {
            config: self.config.clone(),
            hub: self.hub.clone(),
            hub_client: Arc::default(),
            deadline: started + timeout,
            state: self.state.clone(),
            mounts: Arc::default(),
        };
        let runs = self.collectors.iter().map(|&id| {
            let context = &context;
            async move {
                let begin = Instant::now();
                let outcome = tokio::time::timeout_at(context.deadline, id.collect(context))
                    .await
                    .unwrap_or(Err(CollectError::Timeout));
                (id, begin.elapsed(), outcome)
            }
        });
        let results = futures::future::join_all(runs).await;

        let mut exposition = Exposition::default();
        let mut success = Gauges::new(
            "koji_exporter_collector_success",
            "Whether the collector succeeded this scrape.",
        );
        let mut duration = Gauges::new(
            "koji_exporter_collector_duration_seconds",
            "How long the collector took this scrape.",
        );
        for (id, elapsed, outcome) in results {
            let labels = CollectorLabels {
                collector: id.name().into(),
            };
            duration.push(labels.clone(), elapsed.as_secs_f64());
            self.log_transition(id, &outcome);
            match outcome {
                Ok(Collected::Families(families)) => {
                    success.push(labels, 1.0);
                    let mut registry = Registry::default();
                    for family in families {
                        registry.register_collector(family);
                    }
                    exposition.push(Part::Registry(registry));
                }
                Ok(Collected::Text(families)) => {
                    success.push(labels, 1.0);
                    exposition.push(Part::Text(families));
                }
                Err(_) => success.push(labels, 0.0),
            }
        }
        let mut registry = Registry::default();
        registry.register_collector(success.boxed());
        registry.register_collector(duration.boxed());
        if self.collectors.contains(&CollectorId::KojiHosts) {
            registry.register_collector(
                Counters::<NoLabels>::new(
                    "koji_exporter_host_config_reads_total",
                    "Times koji_hosts read the hosts' configuration (Koji's host tables changed, a snapshot aged out or a query failed) instead of reusing it.",
                )
                .with([], self.state.host_config.reads() as f64)
                .boxed(),
            );
        }
        registry.register_collector(
            Infos::new("koji_exporter_build_info", "koji-exporter's version.")
                .with(BuildLabels {
                    version: env!("CARGO_PKG_VERSION").into(),
                })
                .boxed(),
        );
        exposition.push(Part::Registry(registry));
        exposition
    }

    fn log_transition(&self, id: CollectorId, outcome: &Result<Collected, CollectError>) {
        let ok = outcome.is_ok();
        let previous = self
            .last_success
            .lock()
            .expect("collector status lock")
            .insert(id, ok);
        match (previous, outcome) {
            (Some(true) | None, Err(error)) => {
                let error = error_chain(error);
                tracing::warn!(collector = id.name(), %error, "collector failed")
            }
            (Some(false), Ok(_)) => tracing::info!(collector = id.name(), "collector recovered"),
            (_, Err(error)) => {
                let error = error_chain(error);
                tracing::debug!(collector = id.name(), %error, "collector still failing")
            }
            _ => {}
        }
    }
}
