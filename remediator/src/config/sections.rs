//! The sections of the configuration file, as data: what each key decides. The rules'
//! parameters are checked by their actions, from [`super`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::actions::kind::ActionKind;
use crate::lifecycle::Policy;

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
    /// The dashboard the approval page links each escalation to, `{host}` replaced by the
    /// alert's Koji host (URL-encoded), e.g. a Grafana dashboard of dashboards/ with its
    /// host variable: `https://grafana.example.org/d/koji-builders?var-host={host}`.
    pub dashboard_url: Option<String>,
    /// A client must send a request's whole header within this, and an idle keep-alive
    /// connection is closed after it (slowloris and idle connections).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A request's whole body must arrive within this, or it is answered 408.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Connections served at once; beyond, new ones wait in the backlog while established
    /// ones are served (the units' `LimitNOFILE` leaves room for it).
    pub max_connections: usize,
    /// On SIGTERM, requests in flight get this long before the listener stops anyway.
    #[serde(with = "humantime_serde")]
    pub shutdown_drain: Duration,
}

impl ServerConfig {
    /// The listener's limits.
    pub fn limits(&self) -> koji_tls::Limits {
        koji_tls::Limits {
            header_read_timeout: self.header_read_timeout,
            body_timeout: self.body_timeout,
            max_connections: self.max_connections,
            drain: self.shutdown_drain,
            ..koji_tls::Limits::default()
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen_address: "127.0.0.1:9867".into(),
            webhook_token_file: None,
            api_token_file: None,
            max_body_bytes: 1 << 20,
            session_lifetime: Duration::from_secs(8 * 3600),
            dashboard_url: None,
            web_config_file: None,
            allow_plain_http: false,
            header_read_timeout: koji_tls::Limits::default().header_read_timeout,
            body_timeout: koji_tls::Limits::default().body_timeout,
            max_connections: koji_tls::Limits::default().max_connections,
            shutdown_drain: koji_tls::Limits::default().drain,
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
    /// Where the hub database is and how to log in (`url`, `password_file`).
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

/// `[agent]`: runs host-local actions on this machine (forwarded by a central
/// remediator, or this instance's own rules). Everything that decides what it touches and
/// runs is here, never in a request.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// File with the bearer token the central remediator presents (distinct from the
    /// webhook's and on-call's).
    pub token_file: PathBuf,
    /// The actions this agent accepts; each needs its `[agent.<action>]` policy.
    pub actions: Vec<ActionKind>,
    /// The Koji host name of this machine: requests about any other host are refused.
    pub host_name: String,
    /// Where the agent records, durably, the services it stopped, so that after a crash
    /// it starts them again.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// What `clean_build_dirs` may delete and which daemons it stops.
    #[serde(default)]
    pub clean_build_dirs: Option<CleanPolicy>,
    /// Which services `restart_local_services` may restart, and how.
    #[serde(default)]
    pub restart_local_services: Option<RestartPolicy>,
    /// How `reboot_host` reboots this machine.
    #[serde(default)]
    pub reboot_host: Option<RebootPolicy>,
}

fn default_state_dir() -> PathBuf {
    "/var/lib/koji-remediator".into()
}

/// `[agent.clean_build_dirs]`: the only paths a cleanup may touch and the only commands
/// it may run on this machine.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CleanPolicy {
    /// Build-directory roots (absolute, no `..`, never `/`); only their top-level entries
    /// are ever deleted. The agent's systemd unit lists the same paths in `ReadWritePaths`.
    pub roots: Vec<PathBuf>,
    /// Retention when the request names none (the runbook: one week).
    #[serde(default = "default_retention", with = "humantime_serde")]
    pub retention: Duration,
    /// The shortest retention a request may ask for.
    #[serde(default = "default_retention", with = "humantime_serde")]
    pub min_retention: Duration,
    /// Free-space target (percent of each root's file system) when the request names none.
    #[serde(default = "default_target_free")]
    pub target_free_percent: f64,
    /// The highest free-space target a request may ask for.
    #[serde(default = "default_max_target_free")]
    pub max_target_free_percent: f64,
    /// Daemons stopped during the cleanup, when running (kojid; plague-builder where present).
    #[serde(default = "default_clean_services")]
    pub services: Vec<String>,
    /// Command and leading arguments that stop a service (its name is appended).
    #[serde(default = "default_stop")]
    pub stop_command: Vec<String>,
    /// Command and leading arguments that start a service.
    #[serde(default = "default_start")]
    pub start_command: Vec<String>,
    /// Command and leading arguments whose success means the service runs.
    #[serde(default = "default_is_active")]
    pub is_active_command: Vec<String>,
    /// procfs, for the mount table (chroot mounts still active are never deleted).
    #[serde(default = "default_procfs")]
    pub procfs: PathBuf,
}

/// `[agent.restart_local_services]`: the services this machine lets a request restart.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    /// Services that may be restarted (a request names some of them, in order).
    pub services: Vec<String>,
    /// Command and leading arguments that restart one (its name is appended).
    #[serde(default = "default_restart")]
    pub restart_command: Vec<String>,
    /// Command and leading arguments whose success means the service runs.
    #[serde(default = "default_is_active")]
    pub is_active_command: Vec<String>,
}

/// `[agent.reboot_host]`: how this machine is rebooted when a drain asks.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RebootPolicy {
    /// Command and arguments that reboot the machine.
    #[serde(default = "default_reboot")]
    pub command: Vec<String>,
    /// How long after answering the command runs (at most 10 minutes).
    #[serde(default = "default_reboot_delay", with = "humantime_serde")]
    pub delay: Duration,
}

fn default_reboot() -> Vec<String> {
    vec!["systemctl".into(), "reboot".into()]
}
fn default_reboot_delay() -> Duration {
    Duration::from_secs(5)
}

fn default_retention() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_target_free() -> f64 {
    25.0
}
fn default_max_target_free() -> f64 {
    50.0
}
fn default_clean_services() -> Vec<String> {
    vec!["kojid".into(), "plague-builder".into()]
}
fn default_stop() -> Vec<String> {
    vec!["systemctl".into(), "stop".into()]
}
fn default_start() -> Vec<String> {
    vec!["systemctl".into(), "start".into()]
}
fn default_restart() -> Vec<String> {
    vec!["systemctl".into(), "restart".into()]
}
fn default_is_active() -> Vec<String> {
    vec!["systemctl".into(), "is-active".into(), "--quiet".into()]
}
fn default_procfs() -> PathBuf {
    "/proc".into()
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
    /// Runs of one action in flight at the same time, across every replica sharing the
    /// journal.
    pub max_concurrent_per_action: usize,
    /// How long a replica's hold on a run lasts without renewal (renewed every third of
    /// it while the run works); after it, another replica (or this one, restarted) takes
    /// the run over and resolves it.
    #[serde(with = "humantime_serde")]
    pub run_lease: Duration,
    /// How often the reconciler looks for runs to start or take over, besides being woken
    /// when a run ends.
    #[serde(with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// Starts of one run at most: a run whose replica died before it applied anything is
    /// started again up to this many times in all.
    pub max_attempts: i32,
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
            run_lease: Duration::from_secs(30),
            reconcile_interval: Duration::from_secs(5),
            max_attempts: 3,
            default_cooldown: Duration::from_secs(600),
        }
    }
}

fn default_restore_after() -> Duration {
    Duration::from_secs(24 * 3600)
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
    /// With `restore_on_resolve`: how long the target must stay quiet (no alert of the
    /// action on it firing, no restore on it) before one change is undone. Changes are
    /// undone one at a time, the latest first, each after its own quiet period: the
    /// lowering is what resolved the alert, so undoing it at once would bring the symptom
    /// back. `0s` undoes as soon as the alert resolves (still never while another alert of
    /// the action fires for the target).
    #[serde(default = "default_restore_after", with = "humantime_serde")]
    pub restore_after: Duration,
    /// At most this many runs of the action that changed something on one target within
    /// an hour; a further one is held and escalated (a fix that keeps being needed is not
    /// fixing anything). None: no limit beyond the cooldown.
    #[serde(default)]
    pub max_runs_per_hour: Option<u32>,
    /// Action parameters, checked by the action.
    #[serde(default)]
    pub params: toml::Table,
}
