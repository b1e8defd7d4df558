//! Outage notices for escalations: rendered from the template in `[notify]` (the runbook's
//! outage template: what is affected, since when, what is planned, who to contact) and
//! mailed through an SMTP relay and/or posted as JSON to a chat bridge, with retries; the
//! delivery result goes to the journal.

use std::sync::Arc;

use serde::Serialize;

use crate::config::{NotifyConfig, SmtpConfig};

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

    /// Delivers the notice on every configured channel, retrying each; returns what to
    /// journal, or what failed.
    pub async fn send(&self, context: &NoticeContext) -> Result<String, String> {
        let text = self.render(context)?;
        let mut delivered = Vec::new();
        let mut failed = Vec::new();
        if let Some(url) = &self.config.webhook_url {
            let notice = Notice {
                text: &text,
                run: context.run,
                alertname: &context.alertname,
                policy: &context.policy,
            };
            match self.retry(|| self.post(url, &notice)).await {
                Ok(n) => delivered.push(format!("delivered to the notice webhook on attempt {n}")),
                Err(error) => failed.push(format!("notice webhook: {error}")),
            }
        }
        if let Some(smtp) = &self.config.smtp {
            match self.retry(|| mail(smtp, &text)).await {
                Ok(n) => delivered.push(format!("mailed to {} on attempt {n}", smtp.to.join(", "))),
                Err(error) => failed.push(format!("mail: {error}")),
            }
        }
        if failed.is_empty() {
            Ok(delivered.join("; "))
        } else {
            failed.extend(delivered);
            Err(failed.join("; "))
        }
    }

    /// Calls `attempt` up to `attempts` times; returns the number of the one that worked.
    async fn retry<F, Fut>(&self, mut attempt: F) -> Result<u32, String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let mut last = String::new();
        for number in 1..=self.config.attempts {
            match attempt().await {
                Ok(()) => return Ok(number),
                Err(error) => last = error,
            }
            if number < self.config.attempts {
                tokio::time::sleep(self.config.retry_delay).await;
            }
        }
        Err(format!(
            "not delivered after {} attempt(s): {last}",
            self.config.attempts
        ))
    }

    async fn post(&self, url: &str, notice: &Notice<'_>) -> Result<(), String> {
        match self.client.post(url).json(notice).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("the notice webhook answered {}", response.status())),
            Err(error) => Err(format!("the notice webhook is unreachable: {error}")),
        }
    }
}

/// Sends the notice by mail: its first line is the subject, the whole text the body.
async fn mail(smtp: &SmtpConfig, text: &str) -> Result<(), String> {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let subject = text.lines().next().unwrap_or("Koji outage notice");
    let mut message = Message::builder()
        .from(smtp.from.parse().map_err(|e| format!("from: {e}"))?)
        .subject(subject);
    for to in &smtp.to {
        message = message.to(to.parse().map_err(|e| format!("to {to}: {e}"))?);
    }
    let message = message.body(text.to_string()).map_err(|e| e.to_string())?;
    // Plain SMTP to the site's relay (see SmtpConfig); the relay does TLS onwards.
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.server)
        .port(smtp.port)
        .timeout(Some(std::time::Duration::from_secs(10)))
        .build();
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
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
