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
    /// Where a NUL character was replaced (see [`parse`]), for the journal.
    #[serde(skip)]
    pub replaced: Vec<String>,
}

/// The character PostgreSQL cannot store in text or jsonb, and what takes its place.
const NUL: char = '\0';
const REPLACEMENT: char = '\u{FFFD}';

/// Replaces NUL in `text`; true when there was one.
fn replace_in(text: &mut String) -> bool {
    let found = text.contains(NUL);
    if found {
        *text = text.replace(NUL, &REPLACEMENT.to_string());
    }
    found
}

/// Replaces NUL in the keys and values of `map`; returns the keys (as replaced) touched.
fn replace_in_map(map: &mut BTreeMap<String, String>) -> Vec<String> {
    if !map.iter().any(|(k, v)| k.contains(NUL) || v.contains(NUL)) {
        return Vec::new();
    }
    let mut touched = Vec::new();
    *map = std::mem::take(map)
        .into_iter()
        .map(|(mut key, mut value)| {
            let changed = replace_in(&mut key) | replace_in(&mut value);
            if changed {
                touched.push(key.clone());
            }
            (key, value)
        })
        .collect();
    touched
}

impl Payload {
    /// Replaces every NUL character (see [`parse`]).
    fn replace_nul(&mut self) {
        replace_in(&mut self.receiver);
        replace_in(&mut self.group_key);
        replace_in(&mut self.status);
        for alert in &mut self.alerts {
            let mut replaced: Vec<String> = replace_in_map(&mut alert.labels)
                .into_iter()
                .map(|key| format!("label {key}"))
                .collect();
            replaced.extend(
                replace_in_map(&mut alert.annotations)
                    .into_iter()
                    .map(|key| format!("annotation {key}")),
            );
            if replace_in(&mut alert.fingerprint) {
                replaced.push("fingerprint".into());
            }
            if replace_in(&mut alert.generator_url) {
                replaced.push("generatorURL".into());
            }
            alert.replaced = replaced;
        }
    }
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

/// Parses and checks a body. The whole body must be UTF-8 (RFC 8259), fields the
/// remediator ignores included: a body that is not is refused whole, never half-read.
/// NUL characters, which JSON allows and PostgreSQL cannot store, are replaced with U+FFFD
/// and each replacement is listed in the alert's `replaced`.
pub fn parse(body: &[u8]) -> Result<Payload, PayloadError> {
    let text = std::str::from_utf8(body)
        .map_err(|error| PayloadError::Malformed(format!("the body is not UTF-8 JSON: {error}")))?;
    let mut payload: Payload =
        serde_json::from_str(text).map_err(|error| PayloadError::Malformed(error.to_string()))?;
    payload.replace_nul();
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
