//! koji-remediator: receives Alertmanager webhooks and applies the Koji runbook's fixes.
//!
//! Only the command line exists so far; the webhook, runbook and actions follow.

use clap::Parser;

/// Applies the Koji operations runbook's fixes when Alertmanager reports a symptom.
#[derive(Parser, Debug)]
#[command(name = "koji-remediator", version, about)]
struct Cli {
    /// Path of the runbook configuration file (TOML).
    #[arg(long = "config.file", value_name = "FILE")]
    config_file: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::bail!(
        "koji-remediator is not implemented yet (config {:?}); only --help and --version work",
        cli.config_file
    )
}
