//! The example configurations installed as a site would install them, for tests that run
//! the binaries' `--check-config` on them: every file an example names under `/etc/` is
//! created below a test folder (tokens, each different; certificates and keys from one
//! throwaway CA; web config files copied from `examples/` with the TLS files they name),
//! and the example's text is rewritten to point there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::certs::TestCa;

/// An installed example.
pub struct InstalledExample {
    /// The rewritten configuration file.
    pub config: PathBuf,
    /// The folder standing in for `/`.
    pub root: PathBuf,
}

/// Quoted `/etc/...` paths on lines that are not comments.
fn etc_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(start) = rest.find("\"/etc/") {
            let tail = &rest[start + 1..];
            let end = tail.find('"').expect("a closing quote");
            found.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    found
}

/// Installs `examples/<name>` (from the repository at `repo`) below `root`.
pub fn install_example(repo: &Path, name: &str, root: &Path) -> InstalledExample {
    let text = std::fs::read_to_string(repo.join("examples").join(name)).unwrap();
    let ca_dir = root.join("test-ca");
    std::fs::create_dir_all(&ca_dir).unwrap();
    let ca = TestCa::new(&ca_dir, "site-ca");
    for path in etc_paths(&text) {
        let target = root.join(path.trim_start_matches('/'));
        create(repo, &ca, &target);
    }
    let config = root.join(name);
    let root_text = root.display().to_string();
    std::fs::write(
        &config,
        text.replace("\"/etc/", &format!("\"{root_text}/etc/")),
    )
    .unwrap();
    InstalledExample {
        config,
        root: root.to_owned(),
    }
}

/// Installs one file an example names (`/etc/...`) below `root`, with what it needs (a web
/// config file's certificates); returns where it is.
pub fn install_file(repo: &Path, etc_path: &str, root: &Path) -> PathBuf {
    let ca_dir = root.join("test-ca");
    std::fs::create_dir_all(&ca_dir).unwrap();
    let ca = TestCa::new(&ca_dir, "site-ca");
    let target = root.join(etc_path.trim_start_matches('/'));
    create(repo, &ca, &target);
    target
}

/// Creates one named file by its kind.
fn create(repo: &Path, ca: &TestCa, target: &Path) {
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let file_name = target.file_name().unwrap().to_string_lossy().into_owned();
    let stem = target.file_stem().unwrap().to_string_lossy().into_owned();
    match target.extension().and_then(|e| e.to_str()) {
        Some("token") => {
            let token = format!(
                "example-{}-token-{:016x}",
                stem,
                fnv(&target.to_string_lossy())
            );
            std::fs::write(target, token).unwrap();
        }
        Some("yml") => {
            let web = std::fs::read_to_string(repo.join("examples").join(&file_name))
                .unwrap_or_else(|_| panic!("examples/{file_name} (named by an example)"));
            std::fs::write(target, &web).unwrap();
            let folder = target.parent().unwrap();
            for line in web.lines().filter(|l| !l.trim_start().starts_with('#')) {
                if let Some((key, value)) = line.trim().split_once(": ") {
                    if matches!(key, "cert_file" | "key_file" | "client_ca_file") {
                        create(repo, ca, &folder.join(value.trim()));
                    }
                }
            }
        }
        Some("crt") if stem == "ca" => {
            std::fs::copy(&ca.cert_file, target).unwrap();
        }
        Some("crt") | Some("key") => {
            let pair = target.with_extension("crt");
            if !pair.exists() {
                let issued = ca.issue(
                    &format!("issued-{stem}"),
                    &[&format!("{stem}.example.org"), "localhost"],
                );
                std::fs::rename(&issued.cert_file, &pair).unwrap();
                std::fs::rename(&issued.key_file, target.with_extension("key")).unwrap();
            }
        }
        _ => panic!(
            "an example names {}, and the test cannot make it",
            target.display()
        ),
    }
}

/// A stable hash, so every token differs from every other.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::etc_paths;

    #[test]
    fn quoted_etc_paths_outside_comments_are_found() {
        let text = "a = \"/etc/x/a.token\"\n# b = \"/etc/x/b.token\"\nc = [\"/etc/x/c.crt\", \"/var/d\"]\n";
        let found: Vec<String> = etc_paths(text).into_iter().collect();
        assert_eq!(found, ["/etc/x/a.token", "/etc/x/c.crt"]);
    }
}
