//! The remediator's configuration: server, databases, guards and the runbook rules,
//! parsed strictly (unknown keys, unknown actions, bad durations are errors naming the key
//! and the file). Secrets live in files named here or in the environment, never inline.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::actions::kind::ActionKind;
pub use crate::lifecycle::Policy;
pub use sections::*;

pub mod sections;

/// Environment variable overriding `journal.url`.
pub const JOURNAL_URL_ENV: &str = "KOJI_REMEDIATOR_JOURNAL_URL";
/// Environment variable overriding `hub.url`.
pub const HUB_URL_ENV: &str = "KOJI_REMEDIATOR_HUB_URL";

/// Everything the configuration file can say.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP listener and its credentials.
    #[serde(default)]
    pub server: ServerConfig,
    /// Where decisions are journaled (required with rules: the webhook journals first).
    #[serde(default)]
    pub journal: Option<DatabaseConfig>,
    /// The Koji hub database the database fixes act on (required with rules; optional on
    /// a builder agent, which Koji builders' network rarely lets reach the database).
    #[serde(default)]
    pub hub: Option<HubConfig>,
    /// This instance runs actions forwarded by a central remediator.
    #[serde(default)]
    pub agent: Option<AgentConfig>,
    /// This (central) instance forwards some actions to agents on the machines concerned.
    #[serde(default)]
    pub forwarding: Option<ForwardingConfig>,
    /// Central guards.
    #[serde(default)]
    pub guards: GuardsConfig,
    /// Outage notices for escalations.
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
    /// On-call people who may approve or reject escalations, each with a token of their own.
    #[serde(default)]
    pub oncall: Vec<OncallUser>,
    /// Alertmanager silences while fixes run (off when absent).
    #[serde(default)]
    pub silences: Option<SilencesConfig>,
    /// The runbook: first matching rule wins.
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
}

pub use koji_config::ConfigError;

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::parse(&koji_config::read(path)?, path)
    }

    /// Parses and validates configuration text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = koji_config::parse(text, path)?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, reason: String| koji_config::invalid(path, key, reason);
        if self.agent.is_none() || !self.rules.is_empty() || self.journal.is_some() {
            // A webhook-serving instance.
            for (key, missing) in [
                (
                    "server.webhook_token_file",
                    self.server.webhook_token_file.is_none(),
                ),
                (
                    "server.api_token_file",
                    self.server.api_token_file.is_none(),
                ),
                ("journal", self.journal.is_none()),
                ("hub", self.hub.is_none()),
            ] {
                if missing {
                    return Err(invalid(
                        key.into(),
                        "required where the webhook is served (a runbook is configured, or no [agent])".into(),
                    ));
                }
            }
        }
        for (key, value) in [
            (
                "server.header_read_timeout",
                self.server.header_read_timeout,
            ),
            ("server.body_timeout", self.server.body_timeout),
            ("server.shutdown_drain", self.server.shutdown_drain),
        ] {
            if value.is_zero() {
                return Err(invalid(key.into(), "must be longer than zero".into()));
            }
        }
        if self.server.max_connections == 0 {
            return Err(invalid(
                "server.max_connections".into(),
                "must be at least 1".into(),
            ));
        }
        if let Some(url) = &self.server.dashboard_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(invalid(
                    "server.dashboard_url".into(),
                    format!("{url:?} is not an http(s) URL"),
                ));
            }
        }
        if self.server.session_lifetime.is_zero() {
            return Err(invalid(
                "server.session_lifetime".into(),
                "must be longer than zero".into(),
            ));
        }
        if let Some(silences) = &self.silences {
            if silences.alertmanager_urls.is_empty() {
                return Err(invalid(
                    "silences.alertmanager_urls".into(),
                    "name at least one Alertmanager, or remove [silences]".into(),
                ));
            }
            if let Some(bad) = silences
                .alertmanager_urls
                .iter()
                .find(|url| !(url.starts_with("http://") || url.starts_with("https://")))
            {
                return Err(invalid(
                    "silences.alertmanager_urls".into(),
                    format!("{bad:?} is not an http(s) URL"),
                ));
            }
            if silences.duration.is_zero() || silences.duration > Duration::from_secs(7 * 86_400) {
                return Err(invalid(
                    "silences.duration".into(),
                    "must be longer than zero and at most 7 days".into(),
                ));
            }
        }
        if let Some(notify) = &self.notify {
            if let Some(url) = &notify.webhook_url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid(
                        "notify.webhook_url".into(),
                        "must be an http(s) URL".into(),
                    ));
                }
            }
            if notify.webhook_url.is_none() && notify.smtp.is_none() {
                return Err(invalid(
                    "notify".into(),
                    "give webhook_url or [notify.smtp], or notices go nowhere".into(),
                ));
            }
            if let Some(smtp) = &notify.smtp {
                for address in std::iter::once(&smtp.from).chain(smtp.to.iter()) {
                    if address.parse::<lettre::message::Mailbox>().is_err() {
                        return Err(invalid(
                            "notify.smtp".into(),
                            format!("{address:?} is not a mail address"),
                        ));
                    }
                }
                if smtp.to.is_empty() {
                    return Err(invalid(
                        "notify.smtp.to".into(),
                        "name at least one recipient".into(),
                    ));
                }
                if smtp.username.is_some() != smtp.password_file.is_some() {
                    return Err(invalid(
                        "notify.smtp.password_file".into(),
                        "username and password_file go together".into(),
                    ));
                }
                if smtp.username.is_some() && smtp.tls == SmtpTls::None {
                    return Err(invalid(
                        "notify.smtp.tls".into(),
                        "a login needs tls = \"starttls\" or \"tls\": the password would cross the network in the clear".into(),
                    ));
                }
            }
            if let Err(error) = minijinja::Environment::new().template_from_str(&notify.template) {
                return Err(invalid("notify.template".into(), error.to_string()));
            }
            if notify.attempts == 0 {
                return Err(invalid(
                    "notify.attempts".into(),
                    "must be at least 1".into(),
                ));
            }
        }
        if let Some(forwarding) = &self.forwarding {
            if forwarding.agents.is_empty() && forwarding.url_template.is_none() {
                return Err(invalid(
                    "forwarding.url_template".into(),
                    "give url_template or agents, or agents cannot be found".into(),
                ));
            }
            if forwarding.attempts == 0 {
                return Err(invalid(
                    "forwarding.attempts".into(),
                    "must be at least 1".into(),
                ));
            }
            if let Some(tls) = &forwarding.tls {
                if tls.cert_file.is_some() != tls.key_file.is_some() {
                    return Err(invalid(
                        "forwarding.tls.key_file".into(),
                        "cert_file and key_file go together".into(),
                    ));
                }
            }
            let plain = forwarding
                .agents
                .values()
                .chain(&forwarding.url_template)
                .any(|url| url.starts_with("http://"));
            if forwarding.tls.is_some() && plain {
                return Err(invalid(
                    "forwarding.agents".into(),
                    "with [forwarding.tls], agent URLs must be https://".into(),
                ));
            }
        }
        if let Some(agent) = &self.agent {
            self.validate_agent(agent, path)?;
        }
        if self.guards.run_lease < Duration::from_secs(1) {
            return Err(invalid(
                "guards.run_lease".into(),
                "must be at least 1s".into(),
            ));
        }
        if self.guards.reconcile_interval.is_zero() {
            return Err(invalid(
                "guards.reconcile_interval".into(),
                "must be longer than zero".into(),
            ));
        }
        if self.guards.max_attempts < 1 {
            return Err(invalid(
                "guards.max_attempts".into(),
                "must be at least 1".into(),
            ));
        }
        if self.guards.max_concurrent_per_action == 0 {
            return Err(invalid(
                "guards.max_concurrent_per_action".into(),
                "must be at least 1".into(),
            ));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(invalid(
                "server.max_body_bytes".into(),
                "must be at least 1024".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let key = |field: &str| format!("rule[{index}].{field}");
            if !names.insert(rule.name.as_str()) {
                return Err(invalid(
                    key("name"),
                    format!("{:?} is used twice", rule.name),
                ));
            }
            if let Err(reason) = rule.action.check_params(&rule.params) {
                return Err(invalid(key("params"), reason));
            }
            if rule.action == ActionKind::Escalate && rule.policy != Policy::Notify {
                return Err(invalid(
                    key("policy"),
                    "escalate goes with policy = \"notify\"".into(),
                ));
            }
            if rule.action.is_host_local() && !self.runs_host_local(rule.action) {
                return Err(invalid(
                    key("action"),
                    format!(
                        "{} runs on the machine it concerns under that machine's own policy: list it in [forwarding] actions, or give this instance [agent] with {} in its actions",
                        rule.action.name(),
                        rule.action.name()
                    ),
                ));
            }
            if rule.max_runs_per_hour == Some(0) {
                return Err(invalid(
                    key("max_runs_per_hour"),
                    "must be at least 1 (leave it out for no limit)".into(),
                ));
            }
            if rule.restore_on_resolve && !rule.action.can_restore() {
                return Err(invalid(
                    key("restore_on_resolve"),
                    format!("{} cannot be undone", rule.action.name()),
                ));
            }
        }
        Ok(())
    }

    /// Whether a host-local action's runs have somewhere to go: an agent it is forwarded
    /// to, or this instance's own `[agent]`.
    fn runs_host_local(&self, action: ActionKind) -> bool {
        let forwarded = self
            .forwarding
            .as_ref()
            .is_some_and(|f| f.actions.contains(&action));
        let local = self
            .agent
            .as_ref()
            .is_some_and(|a| a.actions.contains(&action));
        forwarded || local
    }

    /// Checks an `[agent]`: each action it runs has its policy, and each policy holds.
    fn validate_agent(&self, agent: &AgentConfig, path: &Path) -> Result<(), ConfigError> {
        let invalid =
            |key: &str, reason: String| koji_config::invalid(path, key.to_string(), reason);
        if agent.host_name.is_empty() {
            return Err(invalid(
                "agent.host_name",
                "must name this machine's Koji host".into(),
            ));
        }
        for action in &agent.actions {
            let missing = match action {
                ActionKind::CleanBuildDirs => agent.clean_build_dirs.is_none(),
                ActionKind::RestartLocalServices => agent.restart_local_services.is_none(),
                ActionKind::RebootHost => agent.reboot_host.is_none(),
                other => {
                    return Err(invalid(
                        "agent.actions",
                        format!("{} does not run on an agent", other.name()),
                    ))
                }
            };
            if missing {
                return Err(invalid(
                    &format!("agent.{}", action.name()),
                    format!(
                        "the agent runs {} only under its own policy: add [agent.{}]",
                        action.name(),
                        action.name()
                    ),
                ));
            }
        }
        if let Some(policy) = &agent.clean_build_dirs {
            crate::actions::clean_build_dirs::check_policy(policy)
                .map_err(|reason| invalid("agent.clean_build_dirs", reason))?;
        }
        if let Some(policy) = &agent.restart_local_services {
            crate::actions::restart_local_services::check_policy(policy)
                .map_err(|reason| invalid("agent.restart_local_services", reason))?;
        }
        if let Some(policy) = &agent.reboot_host {
            crate::actions::reboot_host::check_policy(policy)
                .map_err(|reason| invalid("agent.reboot_host", reason))?;
        }
        Ok(())
    }

    /// The cooldown of a rule.
    pub fn cooldown(&self, rule: &Rule) -> Duration {
        rule.cooldown.unwrap_or(self.guards.default_cooldown)
    }
}
