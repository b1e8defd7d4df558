//! Command-line flags, in the exporter convention (`--web.listen-address`,
//! `--config.file`, `--collector.NAME` / `--no-collector.NAME`), and how they combine with
//! the configuration file.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, ArgAction, CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::collectors::table::CollectorId;
use crate::config::Config;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The fixed flags; the per-collector ones are added from the collector table.
#[derive(Debug, Parser)]
#[command(
    name = "koji-exporter",
    version,
    about = "Prometheus exporter for a Koji build system: builders, task queue and hub \
             database connections.",
    after_help = "The hub database URL may also come from KOJI_EXPORTER_DB_URL."
)]
pub struct Cli {
    /// Configuration file (TOML); without it the embedded defaults apply.
    #[arg(long = "config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Address to listen on, overriding `web.listen_address`.
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    pub listen_address: Option<String>,
    /// Web config file (TLS, mutual TLS), overriding `web.config_file`: the Prometheus
    /// exporter toolkit's format.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
    /// Log format.
    #[arg(long = "log.format", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (`info`, `debug`, `koji_exporter=debug`, ...).
    #[arg(long = "log.level", default_value = "info", value_name = "FILTER")]
    pub log_level: String,
    /// procfs mount point, overriding `paths.procfs`.
    #[arg(long = "path.procfs", value_name = "DIR")]
    pub procfs: Option<PathBuf>,
    /// Disable every collector not explicitly enabled with --collector.NAME.
    #[arg(long = "collector.disable-defaults")]
    pub disable_defaults: bool,
    /// Validate the configuration, print the collectors that would run, and exit.
    #[arg(long = "check-config")]
    pub check_config: bool,
    /// Collector switches from the command line, in order.
    #[arg(skip)]
    pub collector_flags: Vec<(CollectorId, bool)>,
}

/// Parses the command line (`args` includes the program name).
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut command = Cli::command();
    for id in CollectorId::all() {
        command = command
            .arg(
                Arg::new(format!("collector.{}", id.name()))
                    .long(format!("collector.{}", id.name()))
                    .action(ArgAction::SetTrue)
                    .help(format!("Enable the {} collector: {}", id.name(), id.help())),
            )
            .arg(
                Arg::new(format!("no-collector.{}", id.name()))
                    .long(format!("no-collector.{}", id.name()))
                    .action(ArgAction::SetTrue)
                    .help(format!("Disable the {} collector", id.name())),
            );
    }
    let matches = command.try_get_matches_from(args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    for id in CollectorId::all() {
        if matches.get_flag(&format!("collector.{}", id.name())) {
            cli.collector_flags.push((id, true));
        }
        if matches.get_flag(&format!("no-collector.{}", id.name())) {
            cli.collector_flags.push((id, false));
        }
    }
    Ok(cli)
}

impl Cli {
    /// The collectors to run: table defaults, then the config file, then the flags.
    pub fn enabled_collectors(&self, config: &Config) -> Vec<CollectorId> {
        CollectorId::all()
            .filter(|&id| {
                let mut enabled = !self.disable_defaults && id.enabled_by_default();
                // An explicit entry in the file is a choice, not a default.
                if let Some(&from_config) = config.collectors.get(id.name()) {
                    enabled = from_config;
                }
                for &(flag_id, flag_enabled) in &self.collector_flags {
                    if flag_id == id {
                        enabled = flag_enabled;
                    }
                }
                enabled
            })
            .collect()
    }

    /// Applies the flags that override configuration values.
    pub fn apply_overrides(&self, config: &mut Config) {
        if let Some(procfs) = &self.procfs {
            config.paths.procfs = procfs.clone();
        }
        if let Some(web_config) = &self.web_config_file {
            config.web.config_file = Some(web_config.clone());
        }
    }

    /// The listen address in force: flag, else config.
    pub fn listen_address(&self, config: &Config) -> String {
        self.listen_address
            .clone()
            .unwrap_or_else(|| config.web.listen_address.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ids: Vec<CollectorId>) -> Vec<&'static str> {
        ids.into_iter().map(CollectorId::name).collect()
    }

    #[test]
    fn defaults_then_config_then_flags() {
        let cli = parse(["koji-exporter"]).unwrap();
        let mut config = Config::default();
        assert_eq!(names(cli.enabled_collectors(&config)), CollectorId::names());

        config.collectors.insert("koji_tasks".into(), false);
        let enabled = names(cli.enabled_collectors(&config));
        assert!(!enabled.contains(&"koji_tasks"));
        assert!(enabled.contains(&"koji_hosts"));

        let cli = parse([
            "koji-exporter",
            "--collector.koji_tasks",
            "--no-collector.koji_db",
        ])
        .unwrap();
        let enabled = names(cli.enabled_collectors(&config));
        assert!(enabled.contains(&"koji_tasks"));
        assert!(!enabled.contains(&"koji_db"));
    }

    #[test]
    fn disable_defaults_keeps_only_what_is_asked_for() {
        let cli = parse([
            "koji-exporter",
            "--collector.disable-defaults",
            "--collector.pg_stat_activity",
        ])
        .unwrap();
        assert_eq!(
            names(cli.enabled_collectors(&Config::default())),
            vec!["pg_stat_activity"]
        );
    }

    #[test]
    fn unknown_collector_flag_is_an_error() {
        let error = parse(["koji-exporter", "--collector.nonsense"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
