//! Logging setup: structured `tracing` events as text or JSON on standard error.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the global subscriber. `filter` uses `RUST_LOG` syntax; an invalid one falls
/// back to `info` with a warning rather than silencing the exporter.
pub fn init(format: LogFormat, filter: &str) {
    let (env_filter, bad_filter) = match EnvFilter::try_new(filter) {
        Ok(parsed) => (parsed, None),
        Err(error) => (EnvFilter::new("info"), Some(error)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a log file or the journal would keep the escape codes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    if let Some(error) = bad_filter {
        tracing::warn!(%error, filter, "invalid --log.level, using info");
    }
}
