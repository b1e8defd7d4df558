//! The configuration file: the shipped example parses, and every malformed file is refused
//! with a message naming the file and the key.

use std::path::Path;
use std::time::Duration;

use koji_exporter::config::{Config, ConfigError};

fn parse_error(text: &str) -> String {
    let error = Config::parse(text, Path::new("/etc/koji-exporter/test.toml")).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("/etc/koji-exporter/test.toml"),
        "{message}"
    );
    message
}

#[test]
fn the_example_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/koji-exporter.toml");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.web.listen_address, "0.0.0.0:9866");
    assert_eq!(config.web.scrape_timeout, Duration::from_secs(10));
    assert_eq!(
        config.database.stale_connection_age,
        Duration::from_secs(2400)
    );
    assert_eq!(config.collectors.get("koji_hosts"), Some(&true));
}

#[test]
fn an_empty_file_is_the_embedded_default() {
    let config = Config::parse("", Path::new("empty.toml")).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.web.listen_address, "127.0.0.1:9866");
    assert_eq!(
        config.database.stale_connection_age,
        Duration::from_secs(40 * 60)
    );
}

#[test]
fn unknown_keys_are_named() {
    let message = parse_error("[database]\nstale_age = \"5m\"\n");
    assert!(message.contains("stale_age"), "{message}");
    let message = parse_error("[webb]\n");
    assert!(message.contains("webb"), "{message}");
}

#[test]
fn unknown_collectors_are_named() {
    let message = parse_error("[collectors]\nkoji_hostz = true\n");
    assert!(message.contains("collectors.koji_hostz"), "{message}");
    assert!(
        message.contains("koji_hosts"),
        "lists the known ones: {message}"
    );
}

#[test]
fn bad_values_are_named() {
    let message = parse_error("[web]\nscrape_timeout = \"soon\"\n");
    assert!(message.contains("scrape_timeout"), "{message}");
    let message = parse_error("[web]\nscrape_timeout = \"0s\"\n");
    assert!(message.contains("web.scrape_timeout"), "{message}");
    let message = parse_error("[database]\npool_size = 0\n");
    assert!(message.contains("database.pool_size"), "{message}");
    let message = parse_error("[database]\npool_size = \"four\"\n");
    assert!(message.contains("pool_size"), "{message}");
    let message = parse_error("[database]\nurl = \"postgresql://u:secret@host:notaport/db\"\n");
    assert!(message.contains("database.url"), "{message}");
    assert!(
        !message.contains("secret"),
        "never echo a password: {message}"
    );
}

#[test]
fn a_missing_file_says_which() {
    let error = Config::load(Path::new("/nonexistent/koji-exporter.toml")).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(error
        .to_string()
        .contains("/nonexistent/koji-exporter.toml"));
}

#[test]
fn builder_sections_are_validated() {
    let message = parse_error("[[filesystems.paths]]\npath = \"relative/dir\"\nrole = \"local\"\n");
    assert!(message.contains("filesystems.paths[0].path"), "{message}");
    let message = parse_error("[[filesystems.paths]]\npath = \"/mnt/koji\"\nrole = \"remote\"\n");
    assert!(message.contains("remote"), "{message}");
    let message = parse_error("[[filesystems.paths]]\npath = \"/mnt/koji\"\n");
    assert!(message.contains("role"), "{message}");
    let message = parse_error("[builddirs]\ninterval = \"0s\"\n");
    assert!(message.contains("builddirs.interval"), "{message}");
    let message = parse_error("[builddirs]\nroots = [\"var/lib/mock\"]\n");
    assert!(message.contains("builddirs.roots"), "{message}");
    let message = parse_error("[services]\nnames = [\"/usr/sbin/kojid\"]\n");
    assert!(message.contains("services.names"), "{message}");
    let message = parse_error("[builder]\nhostname = \"x\"\n");
    assert!(message.contains("hostname"), "{message}");
}

#[test]
fn the_builder_example_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/koji-exporter-builder.toml");
    let config = Config::load(&path).unwrap();
    assert_eq!(
        config.builder.host_name.as_deref(),
        Some("buildvm-x86-01.example.org")
    );
    assert_eq!(config.filesystems.paths.len(), 7);
    assert_eq!(config.builddirs.retention, Duration::from_secs(7 * 86400));
    assert_eq!(config.collectors.get("koji_hosts"), Some(&false));
}
