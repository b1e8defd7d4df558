//! Outage notices for escalations: rendered from the template in `[notify]` (the runbook's
//! outage template: what is affected, since when, what is planned, who to contact) and
//! posted as JSON to a chat bridge or any webhook, with retries; every delivery attempt's
//! result goes to the journal.

use std::sync::Arc;

use serde::Serialize;

use crate::config::NotifyConfig;

/// What a notice is made from.
#[derive(Debug, Clone, Serialize)]
pub struct NoticeContext {
    /// Journal run id.
    pub run: i64,
    /// The alert's name.
    pub alertname: String,
    /// The alert's labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The alert's summary annotation.
    pub summary: String,
    /// The alert's description annotation.
    pub description: String,
    /// When the alert started (RFC 3339).
    pub since: String,
    /// What is planned (the plan's summary), or what on-call is asked to do.
    pub plan: String,
    /// `notify` (for a human) or `approve` (waiting for approval).
    pub policy: String,
    /// Who to contact.
    pub contact: String,
}

/// The JSON posted to the webhook.
#[derive(Debug, Clone, Serialize)]
struct Notice<'a> {
    text: &'a str,
    run: i64,
    alertname: &'a str,
    policy: &'a str,
}

/// Sends notices.
#[derive(Debug, Clone)]
pub struct Notifier {
    config: Arc<NotifyConfig>,
    client: reqwest::Client,
}

impl Notifier {
    /// A notifier; the template was checked when the configuration was loaded.
    pub fn new(config: NotifyConfig) -> Notifier {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("an HTTP client with a timeout");
        Notifier {
            config: Arc::new(config),
            client,
        }
    }

    /// Who to contact.
    pub fn contact(&self) -> &str {
        &self.config.contact
    }

    /// Renders the notice text.
    pub fn render(&self, context: &NoticeContext) -> Result<String, String> {
        render(&self.config.template, context)
    }

    /// Posts the notice, retrying; returns what to journal.
    pub async fn send(&self, context: &NoticeContext) -> Result<String, String> {
        let text = self.render(context)?;
        let notice = Notice {
            text: &text,
            run: context.run,
            alertname: &context.alertname,
            policy: &context.policy,
        };
        let mut last = String::new();
        for attempt in 1..=self.config.attempts {
            let sent = self
                .client
                .post(&self.config.webhook_url)
                .json(&notice)
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => {
                    return Ok(format!(
                        "delivered to the notice webhook on attempt {attempt}"
                    ))
                }
                Ok(response) => last = format!("the notice webhook answered {}", response.status()),
                Err(error) => last = format!("the notice webhook is unreachable: {error}"),
            }
            if attempt < self.config.attempts {
                tokio::time::sleep(self.config.retry_delay).await;
            }
        }
        Err(format!(
            "not delivered after {} attempt(s): {last}",
            self.config.attempts
        ))
    }
}

/// Renders `template` (Jinja syntax, via minijinja) with the notice's fields.
pub fn render(template: &str, context: &NoticeContext) -> Result<String, String> {
    let mut environment = minijinja::Environment::new();
    environment
        .add_template("notice", template)
        .map_err(|error| error.to_string())?;
    environment
        .get_template("notice")
        .and_then(|template| template.render(minijinja::value::Serde(context)))
        .map_err(|error| error.to_string())
}
