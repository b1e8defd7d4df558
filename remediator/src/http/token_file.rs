//! Bearer tokens read from files and re-read when the file changes, so a token is rotated
//! by replacing its file, without a restart. Each use checks the file's identity (inode,
//! size, modification time: one `stat`); a changed file is read again. A file that became
//! unreadable, empty or too short keeps the previous token in force and is logged, so a
//! half-written file never locks everybody out or lets a short token in.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// A token and the file it comes from.
#[derive(Debug, Clone)]
pub struct TokenFile {
    path: Arc<PathBuf>,
    state: Arc<Mutex<Loaded>>,
}

/// What identifies a file's version: inode, size, modification time (s, ns).
type FileIdentity = (u64, u64, i64, i64);

#[derive(Debug)]
struct Loaded {
    identity: FileIdentity,
    token: Arc<str>,
}

fn identity(metadata: &std::fs::Metadata) -> FileIdentity {
    (
        metadata.ino(),
        metadata.len(),
        metadata.mtime(),
        metadata.mtime_nsec(),
    )
}

fn read(path: &Path) -> Result<(FileIdentity, Arc<str>), String> {
    let metadata = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let token = text.trim();
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "holds a token shorter than {MIN_TOKEN_LEN} characters"
        ));
    }
    Ok((identity(&metadata), Arc::from(token)))
}

impl TokenFile {
    /// Reads the token now; `key` names the setting in errors.
    pub fn open(path: &Path, key: &str) -> anyhow::Result<TokenFile> {
        let (identity, token) = read(path).map_err(|error| {
            let hint = if path.exists() {
                None
            } else {
                crate::site_files::how_to_make(path)
            };
            match hint {
                Some(hint) => anyhow::anyhow!("{key} {}: {error}; {hint}", path.display()),
                None => anyhow::anyhow!("{key} {}: {error}", path.display()),
            }
        })?;
        Ok(TokenFile {
            path: Arc::new(path.to_owned()),
            state: Arc::new(Mutex::new(Loaded { identity, token })),
        })
    }

    /// The token in force: re-read first when the file changed.
    pub fn current(&self) -> Arc<str> {
        let mut loaded = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let changed = std::fs::metadata(&*self.path)
            .map(|m| identity(&m) != loaded.identity)
            .unwrap_or(true);
        if changed {
            match read(&self.path) {
                Ok((identity, token)) => {
                    if token != loaded.token {
                        tracing::info!(file = %self.path.display(), "token file changed; new token in force");
                    }
                    *loaded = Loaded { identity, token };
                }
                Err(error) => {
                    tracing::error!(file = %self.path.display(), %error, "token file unusable; the previous token stays in force");
                }
            }
        }
        loaded.token.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_is_read_again_and_a_broken_one_keeps_the_old_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "first-token-0123456789\n").unwrap();
        let token = TokenFile::open(&path, "server.webhook_token_file").unwrap();
        assert_eq!(&*token.current(), "first-token-0123456789");

        // Rotated by rename, as deployment tools do.
        std::fs::write(dir.path().join("new"), "second-token-0123456789").unwrap();
        std::fs::rename(dir.path().join("new"), &path).unwrap();
        assert_eq!(&*token.current(), "second-token-0123456789");

        std::fs::write(dir.path().join("short"), "short").unwrap();
        std::fs::rename(dir.path().join("short"), &path).unwrap();
        assert_eq!(&*token.current(), "second-token-0123456789");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(&*token.current(), "second-token-0123456789");

        let error = TokenFile::open(&dir.path().join("missing"), "agent.token_file")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("agent.token_file "), "{error}");
    }
}
