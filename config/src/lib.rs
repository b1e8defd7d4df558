//! Strict TOML configuration files, as both binaries read them: an unreadable file, bad
//! TOML, an unknown key or a wrong type, and a well-formed but unusable value each give an
//! error that names the file and the key, so a typo never falls back to a default.

pub mod error_chain;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a configuration could not be used. Each message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys or wrong types.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's error, which names the key, line and column.
        source: toml::de::Error,
    },
    /// A value is well-formed but unusable.
    #[error("invalid config file {path}: key `{key}`: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads `path` as text.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses TOML text into `T` (whose types deny unknown fields); `path` names it in errors.
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// The error for an unusable value at `key` of the file at `path`.
pub fn invalid(path: &Path, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_path_buf(),
        key: key.into(),
        reason: reason.into(),
    }
}
