//! Outage notices for escalations: rendered from the template in `[notify]` (the runbook's
//! outage template: what is affected, since when, what is planned, who to contact) and
//! mailed through an SMTP relay and/or posted as JSON to a chat bridge, with retries; the
//! delivery result goes to the journal.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use lettre::transport::smtp::client::{Certificate, TlsParameters};

use crate::config::sections::{NotifyConfig, SmtpConfig, SmtpTls};

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

/// The channel names `delivered` is keyed by.
const WEBHOOK: &str = "webhook";
const MAIL: &str = "mail";

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

    /// Tries every configured channel that has not taken the notice yet, once; records
    /// those that take it in `delivered` (with how, for the journal) and returns what failed.
    /// Retries are the outbox's: see [`crate::engine::outbox`].
    pub async fn attempt(
        &self,
        context: &NoticeContext,
        text: &str,
        number: i32,
        delivered: &mut BTreeMap<String, String>,
    ) -> Vec<String> {
        let mut failed = Vec::new();
        if let Some(url) = self
            .config
            .webhook_url
            .as_ref()
            .filter(|_| !delivered.contains_key(WEBHOOK))
        {
            let notice = Notice {
                text,
                run: context.run,
                alertname: &context.alertname,
                policy: &context.policy,
            };
            match self.post(url, &notice).await {
                Ok(()) => {
                    delivered.insert(
                        WEBHOOK.into(),
                        format!("delivered to the notice webhook on attempt {number}"),
                    );
                }
                Err(error) => failed.push(format!("notice webhook: {error}")),
            }
        }
        if let Some(smtp) = self
            .config
            .smtp
            .as_ref()
            .filter(|_| !delivered.contains_key(MAIL))
        {
            match mail(smtp, text).await {
                Ok(()) => {
                    delivered.insert(
                        MAIL.into(),
                        format!("mailed to {} on attempt {number}", smtp.to.join(", ")),
                    );
                }
                Err(error) => failed.push(format!("mail: {error}")),
            }
        }
        failed
    }

    /// Attempts per notice before it is given up.
    pub fn attempts(&self) -> u32 {
        self.config.attempts
    }

    /// Pause between attempts.
    pub fn retry_delay(&self) -> std::time::Duration {
        self.config.retry_delay
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
    use lettre::transport::smtp::authentication::{Credentials, Mechanism};
    use lettre::transport::smtp::client::Tls;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let subject = text.lines().next().unwrap_or("Koji outage notice");
    let mut message = Message::builder()
        .from(smtp.from.parse().map_err(|e| format!("from: {e}"))?)
        .subject(subject);
    for to in &smtp.to {
        message = message.to(to.parse().map_err(|e| format!("to {to}: {e}"))?);
    }
    let message = message.body(text.to_string()).map_err(|e| e.to_string())?;
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.server)
        .port(smtp.port)
        .timeout(Some(std::time::Duration::from_secs(10)));
    if smtp.tls != SmtpTls::None {
        let parameters = tls_parameters(smtp)?;
        transport = transport.tls(match smtp.tls {
            SmtpTls::Starttls => Tls::Required(parameters),
            _ => Tls::Wrapper(parameters),
        });
    }
    if let (Some(username), Some(password_file)) = (&smtp.username, &smtp.password_file) {
        let password = std::fs::read_to_string(password_file)
            .map_err(|e| format!("cannot read {}: {e}", password_file.display()))?;
        let password = password.lines().next().unwrap_or("").to_owned();
        // PLAIN only, over TLS: relays that answer the LOGIN mechanism's prompts in an
        // unexpected wording left the exchange hanging.
        transport = transport
            .credentials(Credentials::new(username.clone(), password))
            .authentication(vec![Mechanism::Plain]);
    }
    // One bound for the whole exchange, whatever a relay does.
    let sent = tokio::time::timeout(MAIL_TIMEOUT, transport.build().send(message)).await;
    match sent {
        Ok(result) => result
            .map(|_| ())
            .map_err(|e| koji_config::error_chain::error_chain(&e)),
        Err(_) => Err(format!(
            "the mail relay did not finish within {} s",
            MAIL_TIMEOUT.as_secs()
        )),
    }
}

/// Longest a whole mail delivery may take.
const MAIL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The relay's certificate must carry `server`; `ca_file` adds the site's CA to the
/// public roots.
fn tls_parameters(smtp: &SmtpConfig) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(smtp.server.clone());
    if let Some(ca_file) = &smtp.ca_file {
        let pem = std::fs::read(ca_file)
            .map_err(|e| format!("cannot read {}: {e}", ca_file.display()))?;
        let certificate =
            Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", ca_file.display()))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build_rustls().map_err(|e| e.to_string())
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
