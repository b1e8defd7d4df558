//! One scrape: run the enabled collectors concurrently under a deadline, then encode.
//!
//! A collector that fails or misses the deadline loses only its own metrics and reports
//! `koji_exporter_collector_success 0`; the scrape always answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use crate::collectors::{CollectContext, CollectError, CollectorId, CollectorState};
use crate::config::Config;
use crate::hub_database::HubDatabase;
use crate::metric_families::{Families, Gauges, Infos};
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

/// The output format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics text 1.0.0, what Prometheus asks for first.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4, for older scrapers and `curl`.
    PrometheusText,
}

impl Format {
    /// The `Content-Type` of the response.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
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
        let started = Instant::now();
        let context = CollectContext {
            config: self.config.clone(),
            hub: self.hub.clone(),
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

        let mut registry = Registry::default();
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
                Ok(families) => {
                    success.push(labels, 1.0);
                    for family in families {
                        registry.register_collector(family);
                    }
                }
                Err(_) => success.push(labels, 0.0),
            }
        }
        registry.register_collector(success.boxed());
        registry.register_collector(duration.boxed());
        registry.register_collector(
            Infos::new("koji_exporter_build_info", "koji-exporter's version.")
                .with(BuildLabels {
                    version: env!("CARGO_PKG_VERSION").into(),
                })
                .boxed(),
        );
        encode(&registry, format)
    }

    fn log_transition(&self, id: CollectorId, outcome: &Result<Families, CollectError>) {
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

fn encode(registry: &Registry, format: Format) -> String {
    let mut body = String::with_capacity(64 * 1024);
    let result = match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut body, registry),
        Format::PrometheusText => {
            prometheus_client::encoding::prometheus_text::encode(&mut body, registry)
        }
    };
    // Writing to a String cannot fail; an encoder error would be a bug in a label set.
    result.expect("encoding metrics into a String");
    body
}
