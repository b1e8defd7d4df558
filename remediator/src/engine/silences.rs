//! Alertmanager silences while a fix runs, so on-call is not paged for a problem the
//! remediator is fixing right now (`[silences]`, off by default). Alertmanager API v2:
//! `POST /api/v2/silences` with one exact (never regex) matcher per label of the alert, so
//! a hostile label value cannot widen the silence to other alerts, and
//! `DELETE /api/v2/silence/{id}` when the run ends. The silence also carries an end time
//! (`[silences] duration`), so one left behind by a crash expires on its own.
//!
//! A silence is a convenience: when Alertmanager cannot be reached the fix runs anyway and
//! the run's outcome says so. Runs whose action restores something when the alert resolves
//! (`lower_capacity`) are never silenced: Alertmanager drops the resolved notification of
//! a silenced alert, and the restore would never happen.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::config::sections::SilencesConfig;

/// Creates and removes silences in one Alertmanager cluster.
#[derive(Debug, Clone)]
pub struct Silencer {
    config: Arc<SilencesConfig>,
    client: reqwest::Client,
}

/// A silence this process created, to be removed when its run ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    /// The Alertmanager that accepted it (peers learn it by gossip).
    pub alertmanager: String,
    /// Alertmanager's id.
    pub id: String,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "silenceID")]
    silence_id: String,
}

impl Silencer {
    /// A silencer for `config`.
    pub fn new(config: SilencesConfig) -> Silencer {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .expect("an HTTP client with a timeout");
        Silencer {
            config: Arc::new(config),
            client,
        }
    }

    /// Silences exactly the alert with these labels; tries each configured Alertmanager
    /// in turn until one accepts.
    pub async fn create(
        &self,
        labels: &BTreeMap<String, String>,
        comment: &str,
    ) -> Result<Silence, String> {
        let matchers: Vec<_> = labels
            .iter()
            .map(|(name, value)| {
                json!({ "name": name, "value": value, "isRegex": false, "isEqual": true })
            })
            .collect();
        if matchers.is_empty() {
            return Err("the alert has no labels to match".into());
        }
        let now = Utc::now();
        // The configuration bounds the duration to a week; never overflow regardless.
        let ends = chrono::Duration::from_std(self.config.duration)
            .ok()
            .and_then(|duration| now.checked_add_signed(duration))
            .unwrap_or(now + chrono::Duration::days(7));
        let body = json!({
            "matchers": matchers,
            "startsAt": now.to_rfc3339(),
            "endsAt": ends.to_rfc3339(),
            "createdBy": self.config.created_by,
            "comment": comment,
        });
        let mut errors = Vec::new();
        for base in &self.config.alertmanager_urls {
            let url = format!("{}/api/v2/silences", base.trim_end_matches('/'));
            let answer = async {
                let response = self
                    .client
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                if !status.is_success() {
                    let text = response.text().await.unwrap_or_default();
                    return Err(format!("{status}: {}", text.trim()));
                }
                response
                    .json::<Created>()
                    .await
                    .map_err(|e| format!("unexpected answer: {e}"))
            }
            .await;
            match answer {
                Ok(created) => {
                    return Ok(Silence {
                        alertmanager: base.clone(),
                        id: created.silence_id,
                    })
                }
                Err(error) => errors.push(format!("{base}: {error}")),
            }
        }
        Err(errors.join("; "))
    }

    /// Expires the silence now.
    pub async fn remove(&self, silence: &Silence) -> Result<(), String> {
        let url = format!(
            "{}/api/v2/silence/{}",
            silence.alertmanager.trim_end_matches('/'),
            silence.id
        );
        let response = self
            .client
            .delete(&url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("{}", response.status()))
        }
    }
}
