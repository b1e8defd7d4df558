//! Alertmanager's webhook payload (version 4), parsed and checked.
//!
//! Unknown fields are ignored, since Alertmanager adds fields between releases; the fields
//! the remediator relies on are required, and anything else wrong is a `PayloadError` that
//! the webhook answers with a 4xx.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The webhook body.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// Payload format version; only "4" is understood.
    pub version: String,
    /// Alertmanager's key of the notification group.
    #[serde(default)]
    pub group_key: String,
    /// `firing` or `resolved` for the group.
    pub status: String,
    /// The receiver that sent it.
    #[serde(default)]
    pub receiver: String,
    /// The alerts of the group.
    pub alerts: Vec<Alert>,
}

/// One alert of the payload.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// `firing` or `resolved`.
    pub status: AlertStatus,
    /// Identifying labels, `alertname` among them.
    pub labels: BTreeMap<String, String>,
    /// Descriptive annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When the alert started firing: with the fingerprint, it identifies one occurrence.
    pub starts_at: DateTime<Utc>,
    /// When it resolved (a zero time while firing).
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// Alertmanager's hash of the labels.
    pub fingerprint: String,
    /// Link to the expression in Prometheus.
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
}

/// An alert's state.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// Firing.
    Firing,
    /// Resolved.
    Resolved,
}

impl AlertStatus {
    /// The label value for metrics and the journal.
    pub fn name(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

impl Alert {
    /// The alert's name (checked present by [`parse`]).
    pub fn alertname(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PayloadError {
    /// Not JSON of the expected shape.
    #[error("{0}")]
    Malformed(String),
    /// A version other than 4.
    #[error("unsupported payload version {0:?}; only \"4\" is understood")]
    Version(String),
    /// A semantically impossible alert.
    #[error("alert {index}: {reason}")]
    Alert {
        /// Position in `alerts`.
        index: usize,
        /// Why.
        reason: String,
    },
}

/// Most alerts one delivery may carry; Alertmanager's `max_alerts` is usually far lower.
pub const MAX_ALERTS: usize = 1000;

/// Parses and checks a body.
pub fn parse(body: &[u8]) -> Result<Payload, PayloadError> {
    let payload: Payload =
        serde_json::from_slice(body).map_err(|error| PayloadError::Malformed(error.to_string()))?;
    if payload.version != "4" {
        return Err(PayloadError::Version(payload.version));
    }
    if payload.alerts.len() > MAX_ALERTS {
        return Err(PayloadError::Malformed(format!(
            "{} alerts in one delivery; at most {MAX_ALERTS}",
            payload.alerts.len()
        )));
    }
    for (index, alert) in payload.alerts.iter().enumerate() {
        let reason = if alert.alertname().is_empty() {
            Some("no alertname label")
        } else if alert.fingerprint.is_empty() || alert.fingerprint.len() > 64 {
            Some("fingerprint missing or longer than 64 characters")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(PayloadError::Alert {
                index,
                reason: reason.into(),
            });
        }
    }
    Ok(payload)
}
