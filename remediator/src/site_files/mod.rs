//! `koji-remediator credentials`: the files a site needs besides its configuration, made
//! in one step instead of by hand with openssl.
//!
//! Tokens (Alertmanager's, on-call's shared API token, the forwarding token between the
//! central instance and its agents, one personal token per on-call person) are 256 random
//! bits, written as hex with mode 0600 under a 0700 folder. For trying things out,
//! `--throwaway-ca` adds a certificate authority and the central, agent, exporter and
//! Prometheus certificates the example web configurations name (`tls/…`). File names are
//! the examples' own, so `--dir /etc/koji-remediator` puts each file where
//! `examples/koji-remediator*.toml` and `examples/web-config-*.yml` look for it.
//!
//! A file that already exists is kept, never overwritten (a token in use, a site's own
//! certificate): running it again only adds what is missing, e.g. a new on-call person.

mod throwaway_ca;

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rand::Rng;

/// What to make.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The folder to write into (made if missing).
    pub dir: PathBuf,
    /// On-call people who get a personal token (`oncall/NAME.token`).
    pub oncall: Vec<String>,
    /// With a throwaway CA: the names each certificate is for.
    pub throwaway_ca: Option<CertificateNames>,
}

/// DNS names (or IP addresses) of the certificates a throwaway CA issues.
#[derive(Debug, Clone)]
pub struct CertificateNames {
    /// The central instance (its HTTPS listener, and its client certificate to agents).
    pub central: Vec<String>,
    /// The agents (one certificate for all of them: for trying things out).
    pub agents: Vec<String>,
    /// The exporters (one certificate for all of them).
    pub exporters: Vec<String>,
    /// Prometheus, as a client of the exporters under mutual TLS.
    pub prometheus: Vec<String>,
}

/// One file and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The file.
    pub path: PathBuf,
    /// Whether it was written now or was there already (and was kept).
    pub written: bool,
    /// What it is and where it goes.
    pub purpose: String,
}

/// Why nothing (or not everything) was made.
#[derive(Debug, thiserror::Error)]
pub enum SiteFilesError {
    /// An on-call name that cannot be a file name.
    #[error("on-call name {0:?}: use letters, digits, '.', '_' and '-' only")]
    BadName(String),
    /// A certificate name rcgen refuses.
    #[error("certificate: {0}")]
    Certificate(String),
    /// Writing failed.
    #[error("{path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Makes the files; every name is checked before anything is written.
pub fn make(request: &Request) -> Result<Vec<Outcome>, SiteFilesError> {
    for name in &request.oncall {
        let fine = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !fine {
            return Err(SiteFilesError::BadName(name.clone()));
        }
    }
    let certificates = request
        .throwaway_ca
        .as_ref()
        .map(throwaway_ca::issue)
        .transpose()?;

    let dir = &request.dir;
    make_dir(dir)?;
    let mut outcomes = Vec::new();
    let tokens = [
        (
            "webhook.token",
            "Alertmanager's bearer token: server.webhook_token_file of the central instance, \
             and http_config.authorization.credentials_file of its webhook receiver",
        ),
        (
            "api.token",
            "on-call's shared API token (journal, pause): server.api_token_file",
        ),
        (
            "forwarding.token",
            "between the central instance and its agents: forwarding.token_file on the \
             central instance, agent.token_file on every agent (copy it there)",
        ),
    ];
    for (name, purpose) in tokens {
        outcomes.push(write_new(&dir.join(name), &token(), 0o600, purpose)?);
    }
    if !request.oncall.is_empty() {
        make_dir(&dir.join("oncall"))?;
    }
    for person in &request.oncall {
        outcomes.push(write_new(
            &dir.join("oncall").join(format!("{person}.token")),
            &token(),
            0o600,
            &format!(
                "{person}'s personal on-call token: token_file of the [[oncall]] entry named \
                 {person:?}; give it to {person} alone"
            ),
        )?);
    }
    if let Some(certificates) = certificates {
        make_dir(&dir.join("tls"))?;
        for file in certificates {
            let mode = if file.private { 0o600 } else { 0o644 };
            outcomes.push(write_new(
                &dir.join("tls").join(file.name),
                &file.pem,
                mode,
                &file.purpose,
            )?);
        }
    }
    Ok(outcomes)
}

/// 256 random bits as hex.
fn token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    let mut text: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    text.push('\n');
    text
}

fn make_dir(dir: &Path) -> Result<(), SiteFilesError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| SiteFilesError::Write {
            path: dir.to_owned(),
            source,
        })
}

/// Writes `content` to a new file with `mode`; an existing file is kept as it is.
fn write_new(
    path: &Path,
    content: &str,
    mode: u32,
    purpose: &str,
) -> Result<Outcome, SiteFilesError> {
    let failed = |source| SiteFilesError::Write {
        path: path.to_owned(),
        source,
    };
    let written = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(content.as_bytes()).map_err(failed)?;
            file.sync_all().map_err(failed)?;
            true
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(error) => return Err(failed(error)),
    };
    Ok(Outcome {
        path: path.to_owned(),
        written,
        purpose: purpose.to_owned(),
    })
}

/// For a file the configuration names but that is missing: the command that makes it (or
/// what to copy there), when it is one of the files this module or the examples provide.
pub fn how_to_make(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let parent = path.parent()?;
    let folder = parent.file_name().and_then(|folder| folder.to_str());
    if let (Some("oncall"), Some(person)) = (folder, name.strip_suffix(".token")) {
        let dir = parent.parent()?;
        return Some(format!(
            "make it with `koji-remediator credentials --dir {} --oncall {person}`",
            dir.display()
        ));
    }
    if matches!(name, "webhook.token" | "api.token" | "forwarding.token") {
        return Some(format!(
            "make it with `koji-remediator credentials --dir {}`",
            parent.display()
        ));
    }
    if name.ends_with(".token") {
        return Some(format!(
            "put a token there (`koji-remediator credentials --dir {}` makes tokens: rename \
             one, or name the file webhook.token, api.token or forwarding.token)",
            parent.display()
        ));
    }
    if name.starts_with("web-config-") && name.ends_with(".yml") {
        return Some(format!(
            "copy examples/{name} from koji-runbook there and adjust its names"
        ));
    }
    let throwaway = [
        "ca.crt",
        "remediator.crt",
        "remediator.key",
        "central.crt",
        "central.key",
        "agent.crt",
        "agent.key",
        "exporter.crt",
        "exporter.key",
        "prometheus.crt",
        "prometheus.key",
    ];
    if folder == Some("tls") && throwaway.contains(&name) {
        return Some(format!(
            "a site's own CA issues it; to try things out, \
             `koji-remediator credentials --dir {} --throwaway-ca` makes one",
            parent.parent()?.display()
        ));
    }
    None
}

/// What to tell the person who ran it: each file, and where it goes.
pub fn report(outcomes: &[Outcome], throwaway_ca: bool) -> String {
    let mut lines = Vec::new();
    for outcome in outcomes {
        lines.push(format!(
            "{} {}\n    {}",
            if outcome.written { "wrote" } else { "kept " },
            outcome.path.display(),
            outcome.purpose
        ));
    }
    lines.push(String::new());
    lines.push(
        "Tokens and keys are readable by their owner only: chown them to the user the \
         service runs as (koji-remediator; agents run as root)."
            .to_owned(),
    );
    if throwaway_ca {
        lines.push(
            "The CA is for trying things out. A real site issues these certificates from its \
             own CA (the names as above, serverAuth for listeners, clientAuth for the central \
             instance and Prometheus) and puts them at the same paths; keep tls/ca.key off \
             every server."
                .to_owned(),
        );
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_new_private_and_kept_on_a_second_run() {
        let dir = tempfile::tempdir().unwrap();
        let request = Request {
            dir: dir.path().join("site"),
            oncall: vec!["alice".into()],
            throwaway_ca: None,
        };
        let first = make(&request).unwrap();
        assert_eq!(first.len(), 4);
        assert!(first.iter().all(|outcome| outcome.written));
        let webhook = std::fs::read_to_string(dir.path().join("site/webhook.token")).unwrap();
        let api = std::fs::read_to_string(dir.path().join("site/api.token")).unwrap();
        assert_eq!(webhook.trim().len(), 64);
        assert_ne!(webhook, api);
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &str| {
            std::fs::metadata(dir.path().join(path))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("site"), 0o700);
        assert_eq!(mode("site/oncall/alice.token"), 0o600);

        let second = make(&Request {
            oncall: vec!["alice".into(), "bob".into()],
            ..request
        })
        .unwrap();
        assert_eq!(second.iter().filter(|outcome| outcome.written).count(), 1);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("site/webhook.token")).unwrap(),
            webhook,
            "kept"
        );
    }

    #[test]
    fn a_missing_file_names_the_command_that_makes_it() {
        let hint = |path: &str| how_to_make(Path::new(path)).unwrap_or_default();
        assert_eq!(
            hint("/etc/koji-remediator/webhook.token"),
            "make it with `koji-remediator credentials --dir /etc/koji-remediator`"
        );
        assert_eq!(
            hint("/etc/koji-remediator/oncall/alice.token"),
            "make it with `koji-remediator credentials --dir /etc/koji-remediator --oncall alice`"
        );
        assert!(hint("/etc/koji-remediator/web-config-central.yml")
            .contains("copy examples/web-config-central.yml"));
        assert!(hint("/etc/koji-remediator/tls/agent.key")
            .contains("credentials --dir /etc/koji-remediator --throwaway-ca"));
        assert_eq!(hint("/etc/koji-remediator/journal.password"), "");
    }

    #[test]
    fn a_bad_oncall_name_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let request = Request {
            dir: dir.path().join("site"),
            oncall: vec!["alice".into(), "../bob".into()],
            throwaway_ca: None,
        };
        assert!(matches!(make(&request), Err(SiteFilesError::BadName(_))));
        assert!(!dir.path().join("site").exists());
    }
}
