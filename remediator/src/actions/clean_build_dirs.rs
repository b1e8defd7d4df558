//! `clean_build_dirs`: the runbook's fix for a builder whose disk fills with old mock
//! chroots: stop the builder daemons, delete build-directory entries older than the
//! retention, largest first, until the free-space target is met, start the daemons again.
//!
//! Paths come from configuration only, never from alert labels. Only top-level entries of
//! the configured roots are deleted, never a root itself; the walk and the removal never
//! follow a symlink or leave the root's file system; an entry with a mount point still
//! active below it (a chroot's `/proc`, a bind mount of shared storage) is refused and
//! reported; where the hub database says a buildroot is still active, its directory stays.
//! Services stopped for the cleanup are started again whatever happens to the deletion.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use koji_hostfs::builddir_scan::scan_root;
use koji_hostfs::mounts::{mounts_below, parse_mountinfo, Mount};
use koji_hostfs::removal::remove_entry;
use serde::{Deserialize, Serialize};

use super::{ActionContext, ActionError, Plan, Planned};

/// Rule parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The Koji host name of the machine this runs on; default: the agent's `host_name`.
    /// Alerts naming another host are refused: files are only ever deleted on the machine
    /// the alert is about.
    #[serde(default)]
    pub local_host: Option<String>,
    /// Build-directory roots (absolute, no `..`, never `/`).
    #[serde(default = "default_roots")]
    pub roots: Vec<PathBuf>,
    /// Entries whose newest change is older than this may go (the runbook: one week).
    #[serde(default = "default_retention", with = "humantime_serde")]
    pub retention: Duration,
    /// Stop deleting once this share of each root's file system is free.
    #[serde(default = "default_target")]
    pub target_free_percent: f64,
    /// Daemons to stop during the cleanup, when running (kojid; plague-builder where present).
    #[serde(default = "default_services")]
    pub services: Vec<String>,
    /// Command and leading arguments to stop a service (the name is appended).
    #[serde(default = "default_stop")]
    pub stop_command: Vec<String>,
    /// Command to start a service.
    #[serde(default = "default_start")]
    pub start_command: Vec<String>,
    /// Command whose success means the service runs.
    #[serde(default = "default_is_active")]
    pub is_active_command: Vec<String>,
    /// procfs, for the mount table.
    #[serde(default = "default_procfs")]
    pub procfs: PathBuf,
    /// Ask the hub database which buildroots of this host are still active, and keep them.
    #[serde(default = "default_true")]
    pub check_hub_buildroots: bool,
    /// Buildroot ids never to delete, whatever the hub check says (a central remediator
    /// forwarding to an agent sends the hub's active ones here).
    #[serde(default)]
    pub keep_buildroots: Vec<i32>,
    /// The alert label naming the Koji host (for the hub check and the cooldown).
    #[serde(default = "default_host_label")]
    pub host_label: String,
}

fn default_roots() -> Vec<PathBuf> {
    vec!["/var/lib/mock".into(), "/mnt/build".into()]
}
fn default_retention() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_target() -> f64 {
    25.0
}
fn default_services() -> Vec<String> {
    vec!["kojid".into(), "plague-builder".into()]
}
fn default_stop() -> Vec<String> {
    vec!["systemctl".into(), "stop".into()]
}
fn default_start() -> Vec<String> {
    vec!["systemctl".into(), "start".into()]
}
fn default_is_active() -> Vec<String> {
    vec!["systemctl".into(), "is-active".into(), "--quiet".into()]
}
fn default_procfs() -> PathBuf {
    "/proc".into()
}
fn default_true() -> bool {
    true
}
fn default_host_label() -> String {
    "host".into()
}

/// Whether a root is acceptable: absolute, normal components only, not `/`.
fn check_root(root: &Path) -> Result<(), String> {
    // Written exactly as its components say: no `.`, `..`, doubled or trailing slashes.
    let rebuilt: PathBuf = root.components().collect();
    let normal = root.is_absolute()
        && rebuilt.as_os_str() == root.as_os_str()
        && root
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !normal || root.components().count() < 2 {
        return Err(format!(
            "root {} must be an absolute path below / written without ., .. or extra slashes",
            root.display()
        ));
    }
    Ok(())
}

impl Params {
    /// Parses and checks a rule's `params` table.
    pub fn from_table(table: &toml::Table) -> Result<Params, String> {
        let params: Params = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|error: toml::de::Error| error.to_string())?;
        if params.local_host.as_deref() == Some("") {
            return Err("local_host must name this machine's Koji host".into());
        }
        if params.roots.is_empty() {
            return Err("roots must name at least one build directory".into());
        }
        params.roots.iter().try_for_each(|root| check_root(root))?;
        if !(0.0..100.0).contains(&params.target_free_percent) {
            return Err("target_free_percent must be from 0 to under 100".into());
        }
        for (key, command) in [
            ("stop_command", &params.stop_command),
            ("start_command", &params.start_command),
            ("is_active_command", &params.is_active_command),
        ] {
            if command.is_empty() {
                return Err(format!("{key} must name a command"));
            }
        }
        if params
            .services
            .iter()
            .any(|s| s.is_empty() || s.starts_with('-'))
        {
            return Err("services must be plain service names".into());
        }
        Ok(params)
    }

    /// The cooldown key: the builder named by the alert, else this machine.
    pub fn target(&self, labels: &BTreeMap<String, String>) -> String {
        match labels.get(&self.host_label) {
            Some(host) if !host.is_empty() => format!("host:{host}"),
            _ => "host:local".into(),
        }
    }
}

/// One entry to delete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The root it is in.
    pub root: PathBuf,
    /// Its name in the root.
    pub name: String,
    /// Allocated bytes.
    pub bytes: u64,
    /// Newest modification inside (seconds since the epoch).
    pub newest_mtime: i64,
}

/// An old entry left alone, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    /// The root.
    pub root: PathBuf,
    /// The entry.
    pub name: String,
    /// Why it stays.
    pub reason: String,
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CleanPlan {
    /// Entries to delete, largest first per root.
    pub delete: Vec<Candidate>,
    /// Old entries refused (mounts inside, active buildroots).
    pub kept: Vec<Kept>,
    /// Services to stop and start again.
    pub services: Vec<String>,
    /// Commands.
    pub stop_command: Vec<String>,
    /// Commands.
    pub start_command: Vec<String>,
    /// Commands.
    pub is_active_command: Vec<String>,
    /// procfs for the mount table at apply time.
    pub procfs: PathBuf,
    /// Bytes the deletions free.
    pub bytes: u64,
    /// Free bytes per root before.
    pub free_before: BTreeMap<String, u64>,
}

fn mount_table(procfs: &Path) -> Result<Vec<Mount>, String> {
    let path = procfs.join("self/mountinfo");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_mountinfo(&text).map_err(|e| e.to_string())
}

/// Free bytes and size of the file system holding `path`.
fn space(path: &Path) -> Result<(u64, u64), String> {
    let stat = rustix::fs::statvfs(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize))
}

/// `<tag>-<buildroot id>-<repo id>`: the buildroot id, when the name has that shape.
fn buildroot_id(name: &str) -> Option<i32> {
    let mut parts = name.rsplit('-');
    let _repo: i32 = parts.next()?.parse().ok()?;
    parts.next()?.parse().ok()
}

/// Buildroots of `host` the hub still considers active (not EXPIRED), if the hub answers.
pub async fn active_buildroots(context: &ActionContext, host: &str) -> Option<HashSet<i32>> {
    let client = context.hub.as_ref()?.get().await.ok()?;
    let rows = client
        .query(
            "SELECT sb.buildroot_id FROM standard_buildroot sb JOIN host h ON h.id = sb.host_id
              WHERE h.name = $1 AND sb.state IS DISTINCT FROM 3",
            &[&host],
        )
        .await
        .ok()?;
    Some(rows.iter().map(|row| row.get(0)).collect())
}

/// Plans the cleanup.
pub async fn plan(
    context: &ActionContext,
    params: &Params,
    labels: &BTreeMap<String, String>,
) -> Result<Planned, ActionError> {
    let host = labels.get(&params.host_label).cloned().unwrap_or_default();
    let Some(local_host) = params.local_host.as_ref().or(context.local_host.as_ref()) else {
        return Ok(Planned::Refused(
            "this instance does not know its Koji host name (params.local_host or agent.host_name)"
                .into(),
        ));
    };
    if &host != local_host {
        return Ok(Planned::Refused(format!(
            "the alert is about host {host:?}, this machine is {local_host:?}"
        )));
    }
    let mut active = if params.check_hub_buildroots {
        active_buildroots(context, &host).await
    } else {
        None
    };
    if !params.keep_buildroots.is_empty() {
        active
            .get_or_insert_with(HashSet::new)
            .extend(params.keep_buildroots.iter().copied());
    }
    let params = params.clone();
    let planned = tokio::task::spawn_blocking(move || plan_blocking(&params, active.as_ref()))
        .await
        .map_err(|e| ActionError::Params(format!("planning thread: {e}")))?;
    planned.map_err(ActionError::Params)
}

fn plan_blocking(params: &Params, active: Option<&HashSet<i32>>) -> Result<Planned, String> {
    let mounts = mount_table(&params.procfs)?;
    let now = SystemTime::now();
    let mut delete = Vec::new();
    let mut kept = Vec::new();
    let mut free_before = BTreeMap::new();
    for root in &params.roots {
        let Ok((free, size)) = space(root) else {
            continue;
        };
        free_before.insert(root.display().to_string(), free);
        let scan = scan_root(root, params.retention, now).map_err(|e| e.to_string())?;
        let wanted = (size as f64 * params.target_free_percent / 100.0) as u64;
        let mut expected_free = free;
        let cutoff = now
            .checked_sub(params.retention)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        // Largest first (the scan sorts so), until the target is met.
        for entry in scan.entries.iter().filter(|e| e.newest_mtime < cutoff) {
            if expected_free >= wanted {
                break;
            }
            let name = entry.name.to_string_lossy().into_owned();
            let path = root.join(&entry.name);
            let live: Vec<String> = mounts_below(&path, &mounts)
                .map(|m| m.mount_point.display().to_string())
                .collect();
            if !live.is_empty() {
                kept.push(Kept {
                    root: root.clone(),
                    name,
                    reason: format!("mounts still active inside: {}", live.join(", ")),
                });
                continue;
            }
            if let (Some(active), Some(id)) = (active, buildroot_id(&name)) {
                if active.contains(&id) {
                    kept.push(Kept {
                        root: root.clone(),
                        name,
                        reason: format!("buildroot {id} is still active in Koji"),
                    });
                    continue;
                }
            }
            expected_free += entry.bytes;
            delete.push(Candidate {
                root: root.clone(),
                name,
                bytes: entry.bytes,
                newest_mtime: entry.newest_mtime,
            });
        }
    }
    if delete.is_empty() {
        let why = if kept.is_empty() {
            "no build-dir entry older than the retention is needed to meet the free-space target"
                .to_string()
        } else {
            format!(
                "nothing deletable; kept: {}",
                kept.iter()
                    .map(|k| format!("{} ({})", k.name, k.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        return Ok(if kept.is_empty() {
            Planned::NothingToDo(why)
        } else {
            Planned::Refused(why)
        });
    }
    let bytes = delete.iter().map(|c| c.bytes).sum();
    Ok(Planned::Change(Plan::CleanBuildDirs(CleanPlan {
        delete,
        kept,
        services: params.services.clone(),
        stop_command: params.stop_command.clone(),
        start_command: params.start_command.clone(),
        is_active_command: params.is_active_command.clone(),
        procfs: params.procfs.clone(),
        bytes,
        free_before,
    })))
}

/// Runs `command` with `service` appended, up to a minute; true on success.
pub async fn run_command(command: &[String], service: &str) -> Result<bool, String> {
    let mut process = tokio::process::Command::new(&command[0]);
    process.args(&command[1..]).arg(service).kill_on_drop(true);
    match tokio::time::timeout(Duration::from_secs(60), process.status()).await {
        Ok(Ok(status)) => Ok(status.success()),
        Ok(Err(error)) => Err(format!("{}: {error}", command[0])),
        Err(_) => Err(format!(
            "{} {service}: no answer in 60 s",
            command.join(" ")
        )),
    }
}

impl CleanPlan {
    /// One line for the journal.
    pub fn summary(&self) -> String {
        let names: Vec<String> = self
            .delete
            .iter()
            .map(|c| c.root.join(&c.name).display().to_string())
            .collect();
        let kept = if self.kept.is_empty() {
            String::new()
        } else {
            format!(
                "; keep {}",
                self.kept
                    .iter()
                    .map(|k| format!("{} ({})", k.root.join(&k.name).display(), k.reason))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let deletion = format!(
            "delete {} old build-dir entr{} ({} bytes): {}{kept}",
            self.delete.len(),
            if self.delete.len() == 1 { "y" } else { "ies" },
            self.bytes,
            names.join(", ")
        );
        if self.services.is_empty() {
            deletion
        } else {
            format!(
                "stop {} if running, {deletion}; start them again",
                self.services.join(", ")
            )
        }
    }

    /// Stops the running services, deletes, and starts what it stopped, even when the
    /// deletion fails.
    pub async fn apply(&self, _context: &ActionContext) -> Result<String, ActionError> {
        let mut stopped = Vec::new();
        let mut stop_failure = None;
        for service in &self.services {
            match run_command(&self.is_active_command, service).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    stop_failure = Some(error);
                    break;
                }
            }
            match run_command(&self.stop_command, service).await {
                Ok(true) => stopped.push(service.clone()),
                Ok(false) => {
                    stop_failure = Some(format!("stopping {service} failed"));
                    break;
                }
                Err(error) => {
                    stop_failure = Some(error);
                    break;
                }
            }
        }
        let deleted = match stop_failure {
            // Never delete under a running kojid.
            Some(error) => Err(format!("not deleting: {error}")),
            None => {
                let plan = self.clone();
                tokio::task::spawn_blocking(move || plan.delete_blocking())
                    .await
                    .unwrap_or_else(|e| Err(format!("deletion thread failed: {e}")))
            }
        };
        let mut start_failures = Vec::new();
        for service in &stopped {
            match run_command(&self.start_command, service).await {
                Ok(true) => {}
                Ok(false) => start_failures.push(format!("starting {service} failed")),
                Err(error) => start_failures.push(error),
            }
        }
        let restarted = if stopped.is_empty() {
            "no service was running".to_string()
        } else {
            format!("stopped and started {}", stopped.join(", "))
        };
        match (deleted, start_failures.is_empty()) {
            (Ok(done), true) => Ok(format!("{done}; {restarted}")),
            (Ok(done), false) => Err(ActionError::NotVerified(format!(
                "{done}; {}",
                start_failures.join("; ")
            ))),
            (Err(error), _) => Err(ActionError::NotVerified(format!(
                "{error}; {restarted}{}",
                if start_failures.is_empty() {
                    String::new()
                } else {
                    format!("; {}", start_failures.join("; "))
                }
            ))),
        }
    }

    /// Deletes the planned entries, re-checking each against the mount table first.
    fn delete_blocking(&self) -> Result<String, String> {
        let mounts = mount_table(&self.procfs)?;
        let mut deleted = Vec::new();
        let mut problems = Vec::new();
        for candidate in &self.delete {
            let path = candidate.root.join(&candidate.name);
            if mounts_below(&path, &mounts).next().is_some() {
                problems.push(format!("{}: a mount appeared inside; kept", path.display()));
                continue;
            }
            match remove_entry(&candidate.root, OsStr::new(&candidate.name)) {
                Ok(_) => deleted.push(path.display().to_string()),
                Err(error) => problems.push(format!("{}: {error}", path.display())),
            }
        }
        if problems.is_empty() {
            Ok(format!("deleted {}", deleted.join(", ")))
        } else {
            Err(format!(
                "deleted [{}]; failed: {}",
                deleted.join(", "),
                problems.join("; ")
            ))
        }
    }

    /// Checks free space grew by what was deleted and the services run.
    pub async fn verify(&self, _context: &ActionContext) -> Result<String, ActionError> {
        let mut report = Vec::new();
        for (root, before) in &self.free_before {
            let (free, _) = space(Path::new(root)).map_err(ActionError::NotVerified)?;
            report.push(format!("{root}: {free} bytes free (was {before})"));
        }
        for service in &self.services {
            if let Ok(false) = run_command(&self.is_active_command, service).await {
                report.push(format!("{service} not running"));
            }
        }
        Ok(report.join("; "))
    }
}
