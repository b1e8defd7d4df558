//! koji-exporter's entry point: parse flags, load config, serve until SIGTERM or Ctrl-C.

use anyhow::Context;
use koji_exporter::config::Config;
use koji_exporter::{cli, logging};

/// One thread runs the runtime: a scrape's collectors already run concurrently within one
/// task, and the blocking work (statvfs, procfs walks, the build-directory scan) has its
/// own threads. A second worker only added a second malloc arena holding a scrape's
/// memory (bench/README.md: resident memory at 2,000 hosts).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = cli::parse(std::env::args_os()).unwrap_or_else(|error| error.exit());
    logging::init(cli.log_format, &cli.log_level);
    let mut config = match &cli.config_file {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    cli.apply_overrides(&mut config);
    let collectors = cli.enabled_collectors(&config);
    let listen_address = cli.listen_address(&config);
    let names: Vec<&str> = collectors.iter().map(|id| id.name()).collect();
    let transport = koji_tls::Transport::from_web_config(config.web.config_file.as_deref())?;
    let allow_plain = config.web.allow_plain_http;
    if let Ok(address) = listen_address.parse() {
        transport.check_plain(address, allow_plain, "web.allow_plain_http")?;
    }
    let scraper = koji_exporter::scraper(config, collectors.clone())?;
    if cli.check_config {
        println!("configuration ok; collectors: {}", names.join(", "));
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(&listen_address)
        .await
        .with_context(|| format!("cannot listen on {listen_address}"))?;
    transport.check_plain(listener.local_addr()?, allow_plain, "web.allow_plain_http")?;
    tracing::info!(
        address = %listener.local_addr()?,
        scheme = transport.scheme(),
        collectors = %names.join(","),
        "koji-exporter listening"
    );
    koji_exporter::run(listener, scraper, transport, shutdown_signal()).await?;
    tracing::info!("koji-exporter stopped");
    Ok(())
}

/// Completes on SIGTERM (systemd, Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
