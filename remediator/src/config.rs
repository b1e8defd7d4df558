//! The remediator's configuration: server, databases, guards and the runbook rules,
//! parsed strictly (unknown keys, unknown actions, bad durations are errors naming the key
//! and the file). Secrets live in files named here or in the environment, never inline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::actions::ActionKind;

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

/// `[server]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `host:port` to listen on.
    pub listen_address: String,
    /// File holding the bearer token Alertmanager sends.
    pub webhook_token_file: Option<PathBuf>,
    /// File holding the bearer token for the journal API and the pause switch (on-call's,
    /// distinct from Alertmanager's).
    pub api_token_file: Option<PathBuf>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Web config file in the Prometheus exporter toolkit's format (`tls_server_config`,
    /// client certificates for agents); without it, plain HTTP.
    pub web_config_file: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (without it, such a listener needs TLS:
    /// this one takes commands that delete files and restart services).
    pub allow_plain_http: bool,
    /// How long an approval-page log-in lasts.
    #[serde(with = "humantime_serde")]
    pub session_lifetime: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen_address: "127.0.0.1:9867".into(),
            webhook_token_file: None,
            api_token_file: None,
            max_body_bytes: 1 << 20,
            session_lifetime: Duration::from_secs(8 * 3600),
            web_config_file: None,
            allow_plain_http: false,
        }
    }
}

/// A PostgreSQL connection.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// libpq URL or key=value string (the environment variable overrides it).
    #[serde(default)]
    pub url: Option<String>,
    /// File whose first line is the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// `[hub]`: the Koji hub database.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Connection.
    #[serde(flatten)]
    pub database: DatabaseConfig,
    /// The Koji user recorded as making capacity changes (create it in Koji first, e.g.
    /// `koji add-user koji-remediator`).
    #[serde(default = "default_koji_user")]
    pub koji_user: String,
}

fn default_koji_user() -> String {
    "koji-remediator".into()
}

/// `[notify]`: where outage notices for escalations go.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// A JSON webhook (chat bridge); receives `{"text", "run", "alertname", "policy"}`.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Mail through an SMTP relay (the site's MTA): the notice's first line is the subject.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// The notice, in Jinja syntax, with `alertname`, `labels`, `summary`, `description`,
    /// `since`, `plan`, `policy`, `contact`, `run`.
    #[serde(default = "default_template")]
    pub template: String,
    /// Who to contact, for the template.
    #[serde(default)]
    pub contact: String,
    /// Tries per notice.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Pause between tries.
    #[serde(default = "default_notice_delay", with = "humantime_serde")]
    pub retry_delay: Duration,
}

fn default_template() -> String {
    "OUTAGE NOTICE: {{ alertname }}\n\
     What is affected: {{ summary }}\n\
     Since: {{ since }}\n\
     Details: {{ description }}\n\
     {% if policy == 'approve' %}Planned, waiting for approval: {% else %}For a human: {% endif %}{{ plan }}\n\
     Contact: {{ contact }}\n"
        .into()
}

fn default_notice_delay() -> Duration {
    Duration::from_secs(10)
}

/// `[notify.smtp]`: mail delivery. By default plain SMTP to the local MTA, which does TLS
/// and authentication onwards; without one, STARTTLS or implicit TLS with a login.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Relay host (also the name its certificate must carry, with TLS).
    pub server: String,
    /// Relay port.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// Sender address.
    pub from: String,
    /// Recipients (the outage list, on-call).
    pub to: Vec<String>,
    /// `none` (the local relay), `starttls` (required, never falls back to plain) or `tls`
    /// (implicit TLS, usually port 465).
    #[serde(default)]
    pub tls: SmtpTls,
    /// CA certificates (PEM) for the relay's certificate, besides the public roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Login name, with `password_file`; only over TLS.
    #[serde(default)]
    pub username: Option<String>,
    /// File whose first line is the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// `notify.smtp.tls`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP.
    #[default]
    None,
    /// STARTTLS, required.
    Starttls,
    /// TLS from the first byte.
    Tls,
}

fn default_smtp_port() -> u16 {
    25
}

/// `[silences]`: silence an alert in Alertmanager while its fix runs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SilencesConfig {
    /// Alertmanager base URLs (API v2), tried in order; one of an HA cluster is enough,
    /// the others learn the silence by gossip.
    pub alertmanager_urls: Vec<String>,
    /// The silence's end time from its creation: it is removed when the run ends, and
    /// expires on its own after this if the remediator dies meanwhile.
    #[serde(default = "default_silence_duration", with = "humantime_serde")]
    pub duration: Duration,
    /// The silence's author as Alertmanager shows it.
    #[serde(default = "default_silence_author")]
    pub created_by: String,
    /// Per request to Alertmanager.
    #[serde(default = "default_silence_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_silence_duration() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_silence_author() -> String {
    "koji-remediator".into()
}
fn default_silence_timeout() -> Duration {
    Duration::from_secs(5)
}

/// One `[[oncall]]` person.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OncallUser {
    /// Name journaled with their decisions.
    pub name: String,
    /// File with their bearer token.
    pub token_file: PathBuf,
}

/// `[agent]`: runs forwarded actions on this machine.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// File with the bearer token the central remediator presents (distinct from the
    /// webhook's and on-call's).
    pub token_file: PathBuf,
    /// Actions this agent may run.
    pub actions: Vec<ActionKind>,
    /// The Koji host name of this machine: forwarded alerts about any other host are
    /// refused.
    pub host_name: String,
}

/// `[forwarding]`: which actions run on an agent, and where agents are.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ForwardingConfig {
    /// File with the bearer token presented to agents.
    pub token_file: PathBuf,
    /// Actions to forward instead of running here.
    pub actions: Vec<ActionKind>,
    /// The alert label naming the machine.
    #[serde(default = "default_host_label")]
    pub host_label: String,
    /// Agent base URL per host; checked before `url_template`.
    #[serde(default)]
    pub agents: BTreeMap<String, String>,
    /// Agent base URL for other hosts; `{host}` is replaced by the label's value, which
    /// must then be a plain host name (letters, digits, dots, dashes).
    #[serde(default)]
    pub url_template: Option<String>,
    /// How long an agent may take to answer (a cleanup walks and deletes a lot).
    #[serde(default = "default_forward_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Tries before the run is journaled as failed.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Pause between tries.
    #[serde(default = "default_retry_delay", with = "humantime_serde")]
    pub retry_delay: Duration,
    /// Mutual TLS with the agents (`https://` agent URLs).
    #[serde(default)]
    pub tls: Option<ForwardingTls>,
}

/// `[forwarding.tls]`: the CA agents' certificates must chain to (each is checked against
/// the host name forwarded to) and this instance's own client certificate.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ForwardingTls {
    /// CA certificates (PEM) that sign the agents' certificates.
    pub ca_file: PathBuf,
    /// This instance's client certificate (PEM), presented to agents.
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub key_file: Option<PathBuf>,
}

fn default_host_label() -> String {
    "host".into()
}

fn default_forward_timeout() -> Duration {
    Duration::from_secs(15 * 60)
}

fn default_attempts() -> u32 {
    3
}

fn default_retry_delay() -> Duration {
    Duration::from_secs(30)
}

/// `[guards]`: what holds for every action.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GuardsConfig {
    /// Start paused: journal and plan, apply nothing, until unpaused through the API.
    pub paused: bool,
    /// Journal plans and apply nothing, for every rule.
    pub dry_run: bool,
    /// Runs of one action at the same time, per remediator.
    pub max_concurrent_per_action: usize,
    /// Default cooldown per (action, target) for rules that set none.
    #[serde(with = "humantime_serde")]
    pub default_cooldown: Duration,
}

impl Default for GuardsConfig {
    fn default() -> Self {
        GuardsConfig {
            paused: false,
            dry_run: false,
            max_concurrent_per_action: 1,
            default_cooldown: Duration::from_secs(600),
        }
    }
}

/// What to do with a matching alert.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Apply now.
    Auto,
    /// Plan, then wait for on-call's approval.
    Approve,
    /// Escalate only.
    Notify,
}

impl Policy {
    /// The name used in the journal.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Auto => "auto",
            Policy::Approve => "approve",
            Policy::Notify => "notify",
        }
    }
}

/// One runbook rule.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Rule name, for the journal.
    pub name: String,
    /// The alert name it handles.
    pub alertname: String,
    /// Further labels that must have exactly these values.
    #[serde(default)]
    pub matchers: BTreeMap<String, String>,
    /// The fix.
    pub action: ActionKind,
    /// Apply, wait for approval, or escalate only.
    pub policy: Policy,
    /// Plan and journal, apply nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Minimum time between two runs of this action on the same target.
    #[serde(default, with = "humantime_serde::option")]
    pub cooldown: Option<Duration>,
    /// When the alert resolves, undo the change (actions that can, e.g. `lower_capacity`).
    #[serde(default)]
    pub restore_on_resolve: bool,
    /// Action parameters, checked by the action.
    #[serde(default)]
    pub params: toml::Table,
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
            if rule.restore_on_resolve && !rule.action.can_restore() {
                return Err(invalid(
                    key("restore_on_resolve"),
                    format!("{} cannot be undone", rule.action.name()),
                ));
            }
        }
        Ok(())
    }

    /// The cooldown of a rule.
    pub fn cooldown(&self, rule: &Rule) -> Duration {
        rule.cooldown.unwrap_or(self.guards.default_cooldown)
    }
}
