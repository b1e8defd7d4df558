//! The remediator's own metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// Labels of `koji_remediator_alerts_received_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct AlertLabels {
    /// The alert name when a rule knows it, else `other` (alert labels are untrusted input
    /// and must not grow the series count).
    pub alertname: String,
    /// `firing` or `resolved`.
    pub status: String,
}

/// Labels of `koji_remediator_actions_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// Action name.
    pub action: String,
    /// Final state of the run.
    pub outcome: String,
}

/// Labels of `koji_remediator_action_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ActionLabels {
    /// Action name.
    pub action: String,
}

/// Labels of `koji_remediator_auth_failures_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EndpointLabels {
    /// `webhook`, `api`, `agent`, `approval_page` or `other`.
    pub endpoint: String,
}

/// Labels of `koji_remediator_silence_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SilenceLabels {
    /// `create` or `remove`.
    pub operation: String,
    /// `ok` or `error`.
    pub result: String,
}

/// The metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Alerts received.
    pub alerts_received: Family<AlertLabels, Counter>,
    /// Finished runs.
    pub actions: Family<OutcomeLabels, Counter>,
    /// Run durations.
    pub action_duration: Family<ActionLabels, Histogram>,
    /// Runs waiting for on-call.
    pub escalations_pending: Gauge,
    /// Whether the pause switch is on.
    pub paused: Gauge,
    /// Requests to Alertmanager's silence API.
    pub silence_requests: Family<SilenceLabels, Counter>,
    /// Requests answered 401, by endpoint.
    pub auth_failures: Family<EndpointLabels, Counter>,
    /// Requests refused because their peer failed too often.
    pub auth_rate_limited: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let alerts_received = Family::<AlertLabels, Counter>::default();
        let actions = Family::<OutcomeLabels, Counter>::default();
        let action_duration = Family::<ActionLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.5, 10))
        });
        let escalations_pending = Gauge::default();
        let paused = Gauge::default();
        registry.register(
            "koji_remediator_alerts_received",
            "Alerts received from Alertmanager, by alert name and status",
            alerts_received.clone(),
        );
        registry.register(
            "koji_remediator_actions",
            "Finished action runs, by action and outcome",
            actions.clone(),
        );
        registry.register_with_unit(
            "koji_remediator_action_duration",
            "Time from the start of a run to its outcome",
            Unit::Seconds,
            action_duration.clone(),
        );
        registry.register(
            "koji_remediator_escalations_pending",
            "Runs waiting for on-call's approval",
            escalations_pending.clone(),
        );
        registry.register(
            "koji_remediator_paused",
            "Whether the global pause switch is on",
            paused.clone(),
        );
        let silence_requests = Family::<SilenceLabels, Counter>::default();
        registry.register(
            "koji_remediator_silence_requests",
            "Requests to Alertmanager to silence an alert while its fix runs, and to remove the silence",
            silence_requests.clone(),
        );
        let auth_failures = Family::<EndpointLabels, Counter>::default();
        registry.register(
            "koji_remediator_auth_failures",
            "Requests refused for a missing or wrong token or log-in, by endpoint",
            auth_failures.clone(),
        );
        let auth_rate_limited = Counter::default();
        registry.register(
            "koji_remediator_auth_rate_limited",
            "Failed authentications answered 429 because their address and credential kind failed too often",
            auth_rate_limited.clone(),
        );
        Metrics {
            registry,
            silence_requests,
            auth_failures,
            auth_rate_limited,
            alerts_received,
            actions,
            action_duration,
            escalations_pending,
            paused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// prometheus-client ends each help text with a period itself.
    #[test]
    fn help_texts_end_in_one_period() {
        let metrics = Metrics::default();
        // Families print only once they have a series.
        let s = String::from;
        metrics
            .alerts_received
            .get_or_create(&AlertLabels {
                alertname: s("A"),
                status: s("firing"),
            })
            .inc();
        metrics
            .actions
            .get_or_create(&OutcomeLabels {
                action: s("a"),
                outcome: s("succeeded"),
            })
            .inc();
        metrics
            .action_duration
            .get_or_create(&ActionLabels { action: s("a") })
            .observe(1.0);
        metrics
            .silence_requests
            .get_or_create(&SilenceLabels {
                operation: s("create"),
                result: s("ok"),
            })
            .inc();
        metrics
            .auth_failures
            .get_or_create(&EndpointLabels {
                endpoint: s("webhook"),
            })
            .inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
        let helps: Vec<&str> = text.lines().filter(|l| l.starts_with("# HELP")).collect();
        assert_eq!(helps.len(), 8, "{text}");
        for help in helps {
            assert!(help.ends_with('.') && !help.ends_with(".."), "{help}");
        }
    }
}
