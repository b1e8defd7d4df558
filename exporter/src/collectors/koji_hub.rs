//! `koji_hub`: whether the hub itself answers, not only its database.
//!
//! The runbook's restart section starts from "the hub does not answer": httpd up but the
//! hub wedged, or down while PostgreSQL is fine. The probe is an XML-RPC call that goes
//! through the hub to its database (`getLastEvent`), with a timeout, as a builder's
//! check-in would: `koji_hub_up` and `koji_hub_probe_duration_seconds`. Like `koji_db`, a
//! hub that does not answer is a measurement (`koji_hub_up 0`), not a collector failure.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use super::{CollectContext, CollectError};
use crate::config::HubConfig;
use crate::metric_families::{Families, Gauges};

/// The XML-RPC request: the latest event, read from the hub's database.
const GET_LAST_EVENT: &str = "<?xml version=\"1.0\"?>\
<methodCall><methodName>getLastEvent</methodName><params></params></methodCall>";

/// Reports `koji_hub_up` and `koji_hub_probe_duration_seconds`.
pub async fn collect(context: &CollectContext) -> Result<Families, CollectError> {
    let hub = &context.config.hub;
    let client = context
        .state
        .hub_client
        .get_or_init(|| http_client(hub))
        .as_ref()
        .map_err(|reason| CollectError::Malformed(format!("hub.ca_file: {reason}")))?;
    // Leave a tenth of the scrape's budget (at most a quarter second) to report.
    let remaining = context.remaining();
    let budget = remaining - (remaining / 10).min(Duration::from_millis(250));
    let started = Instant::now();
    let outcome = tokio::time::timeout(budget.min(hub.probe_timeout), probe(client, &hub.url))
        .await
        .unwrap_or_else(|_| Err("no answer within the probe timeout".into()));
    let took = started.elapsed().as_secs_f64();
    let up = match outcome {
        Ok(()) => {
            log_transition(true, "");
            1.0
        }
        Err(reason) => {
            log_transition(false, &reason);
            0.0
        }
    };
    Ok(vec![
        Gauges::single(
            "koji_hub_up",
            "Whether the Koji hub answered an XML-RPC call that reads its database (getLastEvent) this scrape.",
            up,
        ),
        Gauges::single(
            "koji_hub_probe_duration_seconds",
            "How long the hub's XML-RPC probe took, answered or not.",
            took,
        ),
    ])
}

/// One XML-RPC call: an HTTP 200 whose body is a method response without a fault.
async fn probe(client: &reqwest::Client, url: &str) -> Result<(), String> {
    let response = client
        .post(url)
        .header("Content-Type", "text/xml")
        .body(GET_LAST_EVENT)
        .send()
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    if !status.is_success() {
        return Err(format!("{url} answered HTTP {status}"));
    }
    if !body.contains("<methodResponse>") {
        return Err(format!("{url} did not answer with an XML-RPC response"));
    }
    if body.contains("<fault>") {
        return Err(format!(
            "{url} answered with a fault (its database may be down)"
        ));
    }
    Ok(())
}

/// The client for the probe, trusting `hub.ca_file` in addition to the system's roots.
fn http_client(hub: &HubConfig) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().user_agent("koji-exporter");
    if let Some(ca_file) = &hub.ca_file {
        let pem = std::fs::read(ca_file).map_err(|e| format!("{}: {e}", ca_file.display()))?;
        for certificate in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("{}: {e}", ca_file.display()))?
        {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|error| error.to_string())
}

/// The hub state last logged: 0 unknown, 1 up, 2 down.
static LAST_STATE: AtomicU8 = AtomicU8::new(0);

fn log_transition(up: bool, reason: &str) {
    let state = if up { 1 } else { 2 };
    if LAST_STATE.swap(state, Ordering::Relaxed) != state {
        if up {
            tracing::info!("Koji hub answers");
        } else {
            tracing::warn!(%reason, "Koji hub does not answer");
        }
    }
}
