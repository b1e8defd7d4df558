//! `koji_db`: whether the hub database answers, which Koji schema layout it has, and when
//! its server started (`pg_postmaster_start_time()`: "the database restarted after the hub
//! or the builders last connected" is then a query).
//!
//! This collector succeeds whenever it can say something: a database that is down is a
//! measurement (`koji_db_up 0`), not a collector failure. It gives itself a little less than
//! the scrape's deadline so that even a hung database yields `koji_db_up 0` in time.

use std::sync::atomic::{AtomicU8, Ordering};

use prometheus_client::encoding::EncodeLabelSet;

use super::{CollectContext, CollectError};
use crate::metric_families::{Families, Gauges, Infos};
use koji_config::error_chain::error_chain;

/// Label set of `koji_hub_schema_info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct LayoutLabels {
    /// `pre-1.16` or `host_config`.
    pub layout: String,
}

/// The database server's start time, in seconds since the epoch.
const SERVER_STARTED: &str = "SELECT extract(epoch FROM pg_postmaster_start_time())::float8";

const DB_UP_HELP: &str = "Whether the Koji hub database answered this scrape (1) or not (0).";

/// Reports `koji_db_up` and, when up, `koji_hub_schema_info`.
pub async fn collect(context: &CollectContext) -> Result<Families, CollectError> {
    let hub = context.hub()?;
    // Leave a tenth of the budget (at most a quarter second) to report the outcome.
    let remaining = context.remaining();
    let budget = remaining - (remaining / 10).min(std::time::Duration::from_millis(250));
    let probe = async {
        let client = context.hub_client().await?;
        let layout = hub.detect_layout(client).await?;
        let rows = client.query(SERVER_STARTED, &[]).await?;
        let started: Option<f64> = rows.first().map(|row| row.get(0));
        Ok::<_, CollectError>((layout, started))
    };
    let outcome = tokio::time::timeout(budget, probe).await;
    let mut families = Families::new();
    match outcome {
        Ok(Ok((layout, started))) => {
            log_transition(true, layout.label());
            families.push(Gauges::single("koji_db_up", DB_UP_HELP, 1.0));
            if let Some(started) = started {
                families.push(Gauges::single(
                    "koji_db_server_start_time_seconds",
                    "When the hub database's server (postmaster) started, in seconds since the epoch.",
                    started,
                ));
            }
            families.push(
                Infos::new(
                    "koji_hub_schema_info",
                    "The Koji schema layout of the hub database: pre-1.16 or host_config.",
                )
                .with(LayoutLabels {
                    layout: layout.label().to_string(),
                })
                .boxed(),
            );
        }
        Ok(Err(error)) => {
            log_transition(false, &error_chain(&error));
            families.push(Gauges::single("koji_db_up", DB_UP_HELP, 0.0));
        }
        Err(_) => {
            log_transition(false, "no answer before the scrape deadline");
            families.push(Gauges::single("koji_db_up", DB_UP_HELP, 0.0));
        }
    }
    Ok(families)
}

/// The database state last logged: 0 unknown, 1 up, 2 down. Logging only changes keeps a
/// database outage to two log lines instead of one per scrape.
static LAST_STATE: AtomicU8 = AtomicU8::new(0);

fn log_transition(up: bool, detail: &str) {
    let state = if up { 1 } else { 2 };
    if LAST_STATE.swap(state, Ordering::Relaxed) != state {
        if up {
            tracing::info!(layout = detail, "hub database is up");
        } else {
            tracing::warn!(reason = detail, "hub database is down");
        }
    }
}
