//! The central side of agent mode: where a run's agent is, and sending it the run.
//!
//! The agent's address comes from configuration (an explicit map, or a template filled
//! with the alert's host label, which must then be a plain host name, so a label cannot
//! point the request anywhere else). Unreachable agents and timeouts are retried, then
//! journaled as failures; nothing is dropped silently.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::actions::kind::ActionKind;
use crate::agent::protocol::RunKey;
use crate::agent::protocol::{AgentRequest, AgentResponse, RunStatus};
use crate::config::sections::ForwardingConfig;
use crate::http::token_file::TokenFile;

/// Why a forwarded run got no answer from its agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// The agent answered and refused the request (4xx): nothing ran there.
    #[error("agent refused with {0}")]
    Refused(String),
    /// The agent could not be reached, or failed, every time: the run's effect is unknown
    /// if a try reached it.
    #[error("{0}")]
    Unreachable(String),
}

/// Forwards runs to agents.
#[derive(Debug, Clone)]
pub struct Forwarder {
    config: Arc<ForwardingConfig>,
    token: TokenFile,
    client: reqwest::Client,
}

impl Forwarder {
    /// A forwarder for `config`, presenting `token`; reads the TLS files of
    /// `[forwarding.tls]`.
    pub fn new(
        config: ForwardingConfig,
        token: TokenFile,
    ) -> Result<Forwarder, koji_tls::TlsError> {
        let mut builder = reqwest::Client::builder().timeout(config.timeout);
        if let Some(tls) = &config.tls {
            let identity = tls.cert_file.as_deref().zip(tls.key_file.as_deref());
            let rustls = koji_tls::client_config::build(&tls.ca_file, identity)?;
            builder = builder.use_preconfigured_tls(rustls).https_only(true);
        }
        let client = builder.build().expect("an HTTP client with a timeout");
        Ok(Forwarder {
            config: Arc::new(config),
            token,
            client,
        })
    }

    /// Whether runs of `action` go to an agent.
    pub fn forwards(&self, action: ActionKind) -> bool {
        self.config.actions.contains(&action)
    }

    /// The agent's base URL for an alert, or why there is none.
    pub fn agent_url(&self, labels: &BTreeMap<String, String>) -> Result<String, String> {
        let host = labels
            .get(&self.config.host_label)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("the alert has no `{}` label", self.config.host_label))?;
        if let Some(url) = self.config.agents.get(host) {
            return Ok(url.clone());
        }
        let plain = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !plain || host.starts_with(['.', '-']) {
            return Err(format!("host label {host:?} is not a plain host name"));
        }
        self.config
            .url_template
            .as_ref()
            .map(|template| template.replace("{host}", host))
            .ok_or_else(|| format!("no agent configured for {host:?}"))
    }

    /// Sends the run to the agent, retrying as configured.
    pub async fn send(
        &self,
        base: &str,
        request: &AgentRequest,
    ) -> Result<AgentResponse, ForwardError> {
        let url = format!("{}/api/v1/agent/run", base.trim_end_matches('/'));
        let mut last_error = String::new();
        for attempt in 1..=self.config.attempts {
            match self.try_send(&url, request).await {
                Ok(response) => return Ok(response),
                // The agent answered and refused: retrying cannot help.
                Err((false, error)) => return Err(ForwardError::Refused(error)),
                Err((true, error)) => {
                    tracing::warn!(run = request.run, attempt, %error, "agent unreachable");
                    last_error = error;
                }
            }
            if attempt < self.config.attempts {
                tokio::time::sleep(self.config.retry_delay).await;
            }
        }
        Err(ForwardError::Unreachable(format!(
            "agent at {url} failed {} time(s): {last_error}",
            self.config.attempts
        )))
    }

    /// One try; the error says whether a retry may help.
    async fn try_send(
        &self,
        url: &str,
        request: &AgentRequest,
    ) -> Result<AgentResponse, (bool, String)> {
        let response = self
            .client
            .post(url)
            .bearer_auth(&*self.token.current())
            .json(request)
            .send()
            .await
            .map_err(|error| (true, koji_config::error_chain::error_chain(&error)))?;
        let status = response.status();
        if status.is_server_error() {
            return Err((true, format!("agent answered {status}")));
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err((false, format!("{status}: {body}")));
        }
        response
            .json()
            .await
            .map_err(|error| (true, format!("unreadable agent answer: {error}")))
    }
}

impl Forwarder {
    /// Asks the agent at `base` how the forwarded request `key` names ended there (one try;
    /// the reconciler asks again at its next round).
    pub async fn status(&self, base: &str, key: &RunKey) -> Result<RunStatus, String> {
        let url = format!("{}/api/v1/agent/status", base.trim_end_matches('/'));
        let response = self
            .client
            .post(&url)
            .bearer_auth(&*self.token.current())
            .json(key)
            .send()
            .await
            .map_err(|error| koji_config::error_chain::error_chain(&error))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("agent at {url} answered {status}"));
        }
        response
            .json()
            .await
            .map_err(|error| format!("unreadable agent answer: {error}"))
    }
}
