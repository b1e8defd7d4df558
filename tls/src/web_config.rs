//! The web configuration file, in the format of the Prometheus exporter toolkit
//! (node_exporter's `--web.config.file`), so a site can give its exporters and these
//! binaries the same file. Supported: `tls_server_config` with `cert_file`, `key_file`,
//! `client_auth_type`, `client_ca_file`, `client_allowed_sans` and `min_version`. Relative
//! paths are relative to the file's folder, as in the toolkit. Anything else (basic auth,
//! HTTP/2 settings, cipher lists) is refused by name rather than silently ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::TlsError;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// TLS for the listener; absent or empty: plain HTTP.
    #[serde(default)]
    pub tls_server_config: Option<TlsServerSettings>,
}

/// `tls_server_config`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsServerSettings {
    /// The server's certificate chain (PEM), leaf first.
    pub cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Whether clients must present a certificate.
    #[serde(default)]
    pub client_auth_type: ClientAuth,
    /// CA certificates (PEM) client certificates must chain to.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Client certificates must carry one of these subject alternative names (DNS names
    /// or IP addresses); empty: any certificate from the CA.
    #[serde(default)]
    pub client_allowed_sans: Vec<String>,
    /// Oldest TLS version accepted.
    #[serde(default)]
    pub min_version: MinVersion,
}

/// `client_auth_type`, with the toolkit's names.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    NoClientCert,
    /// A certificate is checked against the CA when one is presented.
    VerifyClientCertIfGiven,
    /// A certificate from the CA is required (mutual TLS).
    RequireAndVerifyClientCert,
}

/// `min_version`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum MinVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    TLS12,
    /// TLS 1.3 only.
    TLS13,
}

impl WebConfig {
    /// Reads and checks the file; relative paths are resolved against its folder.
    pub fn read(path: &Path) -> Result<WebConfig, TlsError> {
        let text = std::fs::read_to_string(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
        WebConfig::parse(&text, path)
    }

    /// Parses `text`, read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<WebConfig, TlsError> {
        let invalid = |reason: String| TlsError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let mut config: WebConfig = if text.trim().is_empty() {
            WebConfig::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|error| invalid(error.to_string()))?
        };
        let folder = path.parent().unwrap_or(Path::new("."));
        if let Some(tls) = &mut config.tls_server_config {
            for file in [&mut tls.cert_file, &mut tls.key_file] {
                *file = folder.join(&*file);
            }
            if let Some(ca) = &mut tls.client_ca_file {
                *ca = folder.join(&*ca);
            }
            let verifies = tls.client_auth_type != ClientAuth::NoClientCert;
            if verifies && tls.client_ca_file.is_none() {
                return Err(invalid(
                    "tls_server_config.client_ca_file is required with this client_auth_type"
                        .into(),
                ));
            }
            if !verifies && !tls.client_allowed_sans.is_empty() {
                return Err(invalid(
                    "tls_server_config.client_allowed_sans needs a client_auth_type that verifies client certificates".into(),
                ));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebConfig, TlsError> {
        WebConfig::parse(text, Path::new("/etc/koji/web.yml"))
    }

    #[test]
    fn the_toolkit_format_with_paths_relative_to_the_file() {
        let config = parse(
            "tls_server_config:\n  cert_file: tls/server.crt\n  key_file: /abs/server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [central.example.org]\n  min_version: TLS13\n",
        )
        .unwrap();
        let tls = config.tls_server_config.unwrap();
        assert_eq!(tls.cert_file, Path::new("/etc/koji/tls/server.crt"));
        assert_eq!(tls.key_file, Path::new("/abs/server.key"));
        assert_eq!(tls.client_ca_file.unwrap(), Path::new("/etc/koji/ca.crt"));
        assert_eq!(tls.client_auth_type, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(tls.client_allowed_sans, ["central.example.org"]);
        assert_eq!(tls.min_version, MinVersion::TLS13);
        assert_eq!(parse("").unwrap(), WebConfig::default());
    }

    #[test]
    fn unsupported_or_incomplete_settings_are_errors_naming_the_key_and_file() {
        for (text, expected) in [
            ("basic_auth_users:\n  alice: x\n", "basic_auth_users"),
            ("tls_server_config:\n  cert_file: a\n", "key_file"),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n",
                "cipher_suites",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
                "client_ca_file",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Sometimes\n",
                "Sometimes",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [x]\n",
                "client_allowed_sans",
            ),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains("/etc/koji/web.yml"), "{error}");
            assert!(error.contains(expected), "{expected} not in {error}");
        }
    }
}
