//! koji-remediator's entry point: parse flags, load and check the runbook, serve until
//! SIGTERM or Ctrl-C.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use koji_remediator::config::sections::DatabaseConfig;
use koji_remediator::config::Config;
use koji_remediator::escalations_cli::{self, EscalationCommand};
use koji_remediator::replay;
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Applies the Koji operations runbook's fixes when Alertmanager reports a symptom.
#[derive(Parser, Debug)]
#[command(name = "koji-remediator", version, about)]
struct Cli {
    /// The configuration and runbook (TOML); required to serve, and the runbook a replay
    /// replays through.
    #[arg(long = "config.file", value_name = "FILE", global = true)]
    config_file: Option<PathBuf>,
    /// Address to listen on, overriding `server.listen_address`.
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    listen_address: Option<String>,
    /// Web config file (TLS, mutual TLS for agents), overriding `server.web_config_file`:
    /// the Prometheus exporter toolkit's format.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long = "check-config")]
    check_config: bool,
    /// Log format.
    #[arg(long = "log.format", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log filter.
    #[arg(long = "log.level", default_value = "info", value_name = "FILTER")]
    log_level: String,
    /// On-call's commands against a running remediator (without one, it serves).
    #[command(subcommand)]
    command: Option<Command>,
}

/// Subcommands.
#[derive(clap::Subcommand, Debug)]
enum Command {
    /// List, approve or reject escalations on a running remediator.
    Escalations {
        /// The remediator's base URL.
        #[arg(long, default_value = "http://127.0.0.1:9867")]
        url: String,
        /// File with your personal on-call token.
        #[arg(long, env = "KOJI_REMEDIATOR_TOKEN_FILE")]
        token_file: PathBuf,
        /// CA certificates (PEM) for an https:// URL whose certificate the system's roots
        /// do not cover (a site CA).
        #[arg(long, env = "KOJI_REMEDIATOR_CA_FILE")]
        ca_file: Option<PathBuf>,
        #[command(subcommand)]
        what: EscalationAction,
    },
    /// What an alert would do if it fired now, asked of a running remediator (on-call's
    /// API token): the decision, what would hold it, and the plan. Nothing is written.
    Simulate {
        /// The remediator's base URL.
        #[arg(long, default_value = "http://127.0.0.1:9867")]
        url: String,
        /// File with on-call's API token.
        #[arg(long, env = "KOJI_REMEDIATOR_TOKEN_FILE")]
        token_file: PathBuf,
        /// CA certificates (PEM) for an https:// URL from a site CA.
        #[arg(long, env = "KOJI_REMEDIATOR_CA_FILE")]
        ca_file: Option<PathBuf>,
        /// An Alertmanager webhook payload (JSON), e.g. a captured one.
        #[arg(long, value_name = "FILE")]
        alert: PathBuf,
    },
    /// What the runbook of --config.file (e.g. a proposed one) would have done with past
    /// alerts: a journal's over a period (read-only), or captured payloads, replayed in
    /// their order and timing with every guard. Nothing is applied or written.
    Replay {
        /// The period: the last DURATION up to now (e.g. 7d). The default without
        /// --from or --payloads.
        #[arg(long, value_name = "DURATION", conflicts_with = "from")]
        since: Option<humantime::Duration>,
        /// The period's start (RFC 3339, e.g. 2026-11-23T00:00:00Z).
        #[arg(long, value_name = "TIME")]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// The period's end (RFC 3339); default now.
        #[arg(long, value_name = "TIME")]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// The journal to read, instead of the one --config.file names (e.g. a copy).
        #[arg(long = "journal.url", value_name = "URL")]
        journal_url: Option<String>,
        /// Replay captured Alertmanager payloads (one JSON per line, bare or as
        /// {"received_at": ..., "payload": ...}) instead of a journal.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["since", "from", "until", "journal_url"])]
        payloads: Option<PathBuf>,
        /// Also plan each fix that would run against the hub database as it is today
        /// (--config.file's [hub], read-only), marked as today's plan.
        #[arg(long)]
        plan: bool,
        /// In the table, only the notifications the runbook would treat differently (the
        /// summaries still count them all).
        #[arg(long)]
        only_differences: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        output: ReplayOutput,
    },
    /// Write the tokens a site needs (and, with --throwaway-ca, a CA and the certificates
    /// the example web configurations name) into a folder, and say where each goes. Files
    /// that exist are kept.
    Credentials {
        /// The folder (made with mode 0700 if missing), e.g. /etc/koji-remediator.
        #[arg(long)]
        dir: PathBuf,
        /// An on-call person to make a personal token for (repeatable).
        #[arg(long, value_name = "NAME")]
        oncall: Vec<String>,
        /// Also make a CA and certificates, for trying TLS out (a real site uses its own CA).
        #[arg(long)]
        throwaway_ca: bool,
        /// Names in the central instance's certificates (repeatable).
        #[arg(long, value_name = "NAME", default_values = ["localhost", "127.0.0.1"])]
        central_name: Vec<String>,
        /// Names in the agents' certificate (repeatable).
        #[arg(long, value_name = "NAME", default_values = ["localhost", "127.0.0.1"])]
        agent_name: Vec<String>,
        /// Names in the exporters' certificate (repeatable).
        #[arg(long, value_name = "NAME", default_values = ["localhost", "127.0.0.1"])]
        exporter_name: Vec<String>,
        /// Names in Prometheus' client certificate (repeatable).
        #[arg(long, value_name = "NAME", default_values = ["localhost", "127.0.0.1"])]
        prometheus_name: Vec<String>,
    },
}

/// How a replay prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReplayOutput {
    /// A table for a person.
    Table,
    /// JSON for a script.
    Json,
}

/// What to do with escalations.
#[derive(clap::Subcommand, Debug)]
enum EscalationAction {
    /// Waiting escalations first, with their plans, then recent decisions.
    List,
    /// Approve escalation ID: its stored plan is applied.
    Approve {
        /// Escalation id.
        id: i64,
        /// Why (journaled).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Reject escalation ID.
    Reject {
        /// Escalation id.
        id: i64,
        /// Why (journaled).
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log file or the journal would keep the escape codes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    if let Some(Command::Credentials {
        dir,
        oncall,
        throwaway_ca,
        central_name,
        agent_name,
        exporter_name,
        prometheus_name,
    }) = cli.command
    {
        use koji_remediator::site_files;
        let request = site_files::Request {
            dir,
            oncall,
            throwaway_ca: throwaway_ca.then_some(site_files::CertificateNames {
                central: central_name,
                agents: agent_name,
                exporters: exporter_name,
                prometheus: prometheus_name,
            }),
        };
        let outcomes = site_files::make(&request)?;
        println!("{}", site_files::report(&outcomes, throwaway_ca));
        return Ok(());
    }
    if let Some(Command::Simulate {
        url,
        token_file,
        ca_file,
        alert,
    }) = &cli.command
    {
        let payload = std::fs::read_to_string(alert)
            .with_context(|| format!("cannot read {}", alert.display()))?;
        println!(
            "{}",
            escalations_cli::run(
                url,
                token_file,
                ca_file.as_deref(),
                EscalationCommand::Simulate { payload }
            )
            .await?
        );
        return Ok(());
    }
    if let Some(Command::Replay {
        since,
        from,
        until,
        journal_url,
        payloads,
        plan,
        only_differences,
        output,
    }) = &cli.command
    {
        let config_file = cli
            .config_file
            .as_ref()
            .context("--config.file names the runbook to replay through")?;
        let config = Config::load(config_file)?;
        let source = match payloads {
            Some(path) => replay::Source::Payloads(path.clone()),
            None => {
                let database = match journal_url {
                    Some(url) => DatabaseConfig {
                        url: Some(url.clone()),
                        password_file: None,
                    },
                    None => config
                        .journal
                        .clone()
                        .context("no [journal] in --config.file: give --journal.url")?,
                };
                let until = until.unwrap_or_else(chrono::Utc::now);
                let from = match (from, since) {
                    (Some(from), _) => *from,
                    (None, since) => {
                        let since =
                            since.map_or(std::time::Duration::from_secs(7 * 86400), Into::into);
                        until - chrono::Duration::from_std(since).context("--since is too long")?
                    }
                };
                anyhow::ensure!(
                    from < until,
                    "the period is empty: --from {from} is not before --until {until}"
                );
                replay::Source::Journal {
                    database,
                    url_given: journal_url.is_some(),
                    from,
                    until,
                }
            }
        };
        let plan_hub = match plan {
            true => Some(
                &config
                    .hub
                    .as_ref()
                    .context("--plan needs a [hub] in --config.file")?
                    .database,
            ),
            false => None,
        };
        let report =
            replay::replay(&config, config_file.display().to_string(), source, plan_hub).await?;
        match output {
            ReplayOutput::Table => print!("{}", report.table(*only_differences)),
            ReplayOutput::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        }
        return Ok(());
    }
    if let Some(Command::Escalations {
        url,
        token_file,
        ca_file,
        what,
    }) = cli.command
    {
        let command = match what {
            EscalationAction::List => EscalationCommand::List,
            EscalationAction::Approve { id, reason } => EscalationCommand::Approve { id, reason },
            EscalationAction::Reject { id, reason } => EscalationCommand::Reject { id, reason },
        };
        println!(
            "{}",
            escalations_cli::run(&url, &token_file, ca_file.as_deref(), command).await?
        );
        return Ok(());
    }
    let config_file = cli
        .config_file
        .context("--config.file is required to serve (or give a subcommand)")?;
    let mut config = Config::load(&config_file)?;
    if let Some(web_config) = cli.web_config_file {
        config.server.web_config_file = Some(web_config);
    }
    let transport = koji_tls::Transport::from_web_config(config.server.web_config_file.as_deref())
        .map_err(|error| with_how_to_make(error.into()))?;
    let address = cli
        .listen_address
        .unwrap_or_else(|| config.server.listen_address.clone());
    let allow_plain = config.server.allow_plain_http;
    if let Ok(parsed) = address.parse() {
        transport.check_plain(parsed, allow_plain, "server.allow_plain_http")?;
    }
    if cli.check_config {
        // Token and TLS files too: a deployment check should fail here, not at start.
        koji_remediator::Credentials::load(&config).map_err(with_how_to_make)?;
        println!("{}", check_report(&config));
        return Ok(());
    }
    let config_limits = config.server.limits();
    let app = koji_remediator::start(config).await?;
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    transport.check_plain(
        listener.local_addr()?,
        allow_plain,
        "server.allow_plain_http",
    )?;
    tracing::info!(
        address = %listener.local_addr()?,
        scheme = transport.scheme(),
        "koji-remediator listening"
    );
    let executor = app.central.as_ref().map(|central| central.executor.clone());
    let background = app.background.clone();
    let limits = config_limits;
    koji_remediator::http::run_with(listener, app, transport, shutdown_signal(), limits).await?;
    background.cancel();
    // Requests are drained; let runs in flight finish their apply and verify.
    if let Some(executor) = executor {
        if !executor.drain(std::time::Duration::from_secs(30)).await {
            tracing::warn!("runs still in flight after 30 s; their leases run out and the next replica to look resolves them");
        }
    }
    tracing::info!("koji-remediator stopped");
    Ok(())
}

/// An error about a missing TLS file, with the command that makes it (or what to copy
/// there) added; other errors as they are. (Token files say so themselves.)
fn with_how_to_make(error: anyhow::Error) -> anyhow::Error {
    let missing =
        error
            .chain()
            .find_map(|cause| match cause.downcast_ref::<koji_tls::TlsError>() {
                Some(koji_tls::TlsError::Read { path, source })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    koji_remediator::site_files::how_to_make(path)
                }
                _ => None,
            });
    let Some(hint) = missing else {
        return error;
    };
    // The chain in one line, each cause once (TlsError's message already holds its source).
    let mut text = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if !text.ends_with(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
    }
    anyhow::anyhow!("{text}; {hint}")
}

/// What `--check-config` checked, in words: the rules, and on an agent, its policy.
fn check_report(config: &Config) -> String {
    let mut lines = vec![format!(
        "configuration ok: {} rule(s){}{}",
        config.rules.len(),
        if config.rules.is_empty() { "" } else { ": " },
        config
            .rules
            .iter()
            .map(|rule| format!(
                "{} -> {} ({})",
                rule.alertname,
                rule.action.name(),
                rule.policy.name()
            ))
            .collect::<Vec<_>>()
            .join(", ")
    )];
    if let Some(agent) = &config.agent {
        lines.push(format!(
            "agent for Koji host {}, durable state in {}",
            agent.host_name,
            agent.state_dir.display()
        ));
        if let Some(clean) = &agent.clean_build_dirs {
            let roots: Vec<String> = clean
                .roots
                .iter()
                .map(|r| r.display().to_string())
                .collect();
            lines.push(format!(
                "  clean_build_dirs: may delete old top-level entries of {}; retention {} (at least {}), free-space target {}% (at most {}%); stops {} with `{}`, starts with `{}`",
                roots.join(", "),
                humantime::format_duration(clean.retention),
                humantime::format_duration(clean.min_retention),
                clean.target_free_percent,
                clean.max_target_free_percent,
                if clean.services.is_empty() { "nothing".to_string() } else { clean.services.join(", ") },
                clean.stop_command.join(" "),
                clean.start_command.join(" ")
            ));
        }
        if let Some(restart) = &agent.restart_local_services {
            lines.push(format!(
                "  restart_local_services: may restart {} with `{}`",
                restart.services.join(", "),
                restart.restart_command.join(" ")
            ));
        }
        if let Some(reboot) = &agent.reboot_host {
            lines.push(format!(
                "  reboot_host: may reboot this machine with `{}`, {} after answering",
                reboot.command.join(" "),
                humantime::format_duration(reboot.delay)
            ));
        }
    }
    lines.join("\n")
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
