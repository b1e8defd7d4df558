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
use crate::agent::protocol::Knobs;
use crate::agent::stopped_services::StoppedServices;
use crate::config::sections::CleanPolicy;
use crate::lifecycle::Found;

/// A rule's parameters: only knobs, since what a cleanup touches and runs is the
/// machine's own policy (`[agent.clean_build_dirs]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Entries whose newest change is older than this may go (the agent's `retention` when
    /// absent; never below its `min_retention`).
    #[serde(default, with = "humantime_serde::option")]
    pub retention: Option<Duration>,
    /// Stop deleting once this share of each root's file system is free (the agent's
    /// `target_free_percent` when absent; never above its `max_target_free_percent`).
    #[serde(default)]
    pub target_free_percent: Option<f64>,
    /// The alert label naming the Koji host (for the hub check and the cooldown).
    #[serde(default = "default_host_label")]
    pub host_label: String,
}

/// Keys that belong to the agent's policy: a rule naming one is refused with where it goes.
const POLICY_KEYS: [&str; 8] = [
    "roots",
    "services",
    "stop_command",
    "start_command",
    "is_active_command",
    "procfs",
    "local_host",
    "min_retention",
];

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
        if let Some(key) = POLICY_KEYS.iter().find(|k| table.contains_key(**k)) {
            return Err(format!(
                "{key} is the builder's own policy: set it in the agent's [agent.clean_build_dirs], not in a rule"
            ));
        }
        let params: Params = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|error: toml::de::Error| error.to_string())?;
        if let Some(target) = params.target_free_percent {
            if !(0.0..100.0).contains(&target) {
                return Err("target_free_percent must be from 0 to under 100".into());
            }
        }
        Ok(params)
    }

    /// What a request to the agent carries.
    pub fn knobs(&self) -> Knobs {
        Knobs {
            retention: self.retention,
            target_free_percent: self.target_free_percent,
            host_label: Some(self.host_label.clone()),
            services: None,
        }
    }

    /// The cooldown key: the builder named by the alert, else this machine.
    pub fn target(&self, labels: &BTreeMap<String, String>) -> String {
        match labels.get(&self.host_label) {
            Some(host) if !host.is_empty() => format!("host:{host}"),
            _ => "host:local".into(),
        }
    }
}

/// Checks an agent's cleanup policy: roots acceptable, commands named, bounds consistent.
pub fn check_policy(policy: &CleanPolicy) -> Result<(), String> {
    if policy.roots.is_empty() {
        return Err("roots must name at least one build directory".into());
    }
    policy.roots.iter().try_for_each(|root| check_root(root))?;
    for (key, target) in [
        ("target_free_percent", policy.target_free_percent),
        ("max_target_free_percent", policy.max_target_free_percent),
    ] {
        if !(0.0..100.0).contains(&target) {
            return Err(format!("{key} must be from 0 to under 100"));
        }
    }
    if policy.target_free_percent > policy.max_target_free_percent {
        return Err("target_free_percent is above max_target_free_percent".into());
    }
    if policy.retention < policy.min_retention {
        return Err("retention is shorter than min_retention".into());
    }
    for (key, command) in [
        ("stop_command", &policy.stop_command),
        ("start_command", &policy.start_command),
        ("is_active_command", &policy.is_active_command),
    ] {
        if command.is_empty() {
            return Err(format!("{key} must name a command"));
        }
    }
    if policy
        .services
        .iter()
        .any(|s| s.is_empty() || s.starts_with('-'))
    {
        return Err("services must be plain service names".into());
    }
    Ok(())
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
    /// Services to stop and start again (the policy's, when planned; applied with the
    /// policy's commands, never with anything a stored plan says).
    pub services: Vec<String>,
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

/// The policy this machine's configuration gives the cleanup, or why there is none.
fn policy(context: &ActionContext) -> Result<(&str, &CleanPolicy), String> {
    let agent = context
        .agent
        .as_ref()
        .ok_or("clean_build_dirs runs only where [agent] names this machine")?;
    let policy = agent
        .clean_build_dirs
        .as_ref()
        .ok_or("this machine has no [agent.clean_build_dirs] policy")?;
    Ok((&agent.host_name, policy))
}

/// What one cleanup is asked: the alert's host and the knobs, within the policy's bounds.
struct Asked {
    retention: Duration,
    target_free_percent: f64,
}

fn bounded(policy: &CleanPolicy, knobs: &Knobs) -> Result<Asked, String> {
    let retention = knobs.retention.unwrap_or(policy.retention);
    if retention < policy.min_retention {
        return Err(format!(
            "retention {} is shorter than this machine's min_retention {}",
            humantime::format_duration(retention),
            humantime::format_duration(policy.min_retention)
        ));
    }
    let target_free_percent = knobs
        .target_free_percent
        .unwrap_or(policy.target_free_percent);
    if !(0.0..=policy.max_target_free_percent).contains(&target_free_percent) {
        return Err(format!(
            "target_free_percent {target_free_percent} is above this machine's max_target_free_percent {}",
            policy.max_target_free_percent
        ));
    }
    Ok(Asked {
        retention,
        target_free_percent,
    })
}

/// Plans the cleanup on this machine, under its own policy.
pub async fn plan(
    context: &ActionContext,
    host: &str,
    knobs: &Knobs,
    keep_buildroots: &[i32],
) -> Result<Planned, ActionError> {
    let (local_host, policy) = match policy(context) {
        Ok(found) => found,
        Err(reason) => return Ok(Planned::Refused(reason)),
    };
    if host != local_host {
        return Ok(Planned::Refused(format!(
            "the alert is about host {host:?}, this machine is {local_host:?}"
        )));
    }
    let asked = match bounded(policy, knobs) {
        Ok(asked) => asked,
        Err(reason) => return Ok(Planned::Refused(reason)),
    };
    let mut active = active_buildroots(context, host).await;
    if !keep_buildroots.is_empty() {
        active
            .get_or_insert_with(HashSet::new)
            .extend(keep_buildroots.iter().copied());
    }
    let policy = policy.clone();
    let planned =
        tokio::task::spawn_blocking(move || plan_blocking(&policy, &asked, active.as_ref()))
            .await
            .map_err(|e| ActionError::Host(format!("planning thread: {e}")))?;
    planned.map_err(ActionError::Host)
}

fn plan_blocking(
    params: &CleanPolicy,
    asked: &Asked,
    active: Option<&HashSet<i32>>,
) -> Result<Planned, String> {
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
        let scan = scan_root(root, asked.retention, now).map_err(|e| e.to_string())?;
        let wanted = (size as f64 * asked.target_free_percent / 100.0) as u64;
        let mut expected_free = free;
        let cutoff = now
            .checked_sub(asked.retention)
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
            "delete {} old build-dir entr{} ({}): {}{kept}",
            self.delete.len(),
            if self.delete.len() == 1 { "y" } else { "ies" },
            humansize::format_size(self.bytes, humansize::BINARY),
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

    /// Stops the running services (recording each durably first, so a crash leaves a
    /// note to start it again), deletes, and starts what it stopped, even when the deletion
    /// fails. Commands and the mount table come from this machine's policy as it is now.
    pub async fn apply(&self, context: &ActionContext, run: i64) -> Result<String, ActionError> {
        let (_, policy) = policy(context).map_err(ActionError::Host)?;
        let record = StoppedServices::new(&context.agent.as_ref().expect("policy found").state_dir);
        // Only services the policy names, whatever a stored plan says.
        let services: Vec<&String> = self
            .services
            .iter()
            .filter(|s| policy.services.contains(s))
            .collect();
        let mut stopped = Vec::new();
        let mut stop_failure = None;
        for service in services {
            match run_command(&policy.is_active_command, service).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    stop_failure = Some(error);
                    break;
                }
            }
            if let Err(error) = record.stopping(run, service) {
                stop_failure = Some(format!("cannot record that {service} is stopped: {error}"));
                break;
            }
            match run_command(&policy.stop_command, service).await {
                Ok(true) => stopped.push(service.clone()),
                Ok(false) => {
                    stopped.push(service.clone());
                    stop_failure = Some(format!("stopping {service} failed"));
                    break;
                }
                Err(error) => {
                    stopped.push(service.clone());
                    stop_failure = Some(error);
                    break;
                }
            }
        }
        let deleted = match stop_failure {
            // Never delete under a running kojid.
            Some(error) => Err(format!("not deleting: {error}")),
            None => {
                // Only entries of the policy's roots, whatever a stored plan says.
                let mut plan = self.clone();
                plan.delete.retain(|c| policy.roots.contains(&c.root));
                let procfs = policy.procfs.clone();
                tokio::task::spawn_blocking(move || plan.delete_blocking(&procfs))
                    .await
                    .unwrap_or_else(|e| Err(format!("deletion thread failed: {e}")))
            }
        };
        let start_failures = start_again(policy, &record, &stopped).await;
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

    /// Whether an interrupted cleanup took effect: every planned entry gone is applied,
    /// every one still there is not, anything between cannot be told.
    pub fn find_applied(&self) -> Found {
        let present = self
            .delete
            .iter()
            .filter(|c| std::fs::symlink_metadata(c.root.join(&c.name)).is_ok())
            .count();
        match present {
            0 => Found::Applied,
            n if n == self.delete.len() => Found::NotApplied,
            _ => Found::Unknown,
        }
    }

    /// Deletes the planned entries, re-checking each against the mount table first.
    fn delete_blocking(&self, procfs: &Path) -> Result<String, String> {
        let mounts = mount_table(procfs)?;
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
    pub async fn verify(&self, context: &ActionContext) -> Result<String, ActionError> {
        let (_, policy) = policy(context).map_err(ActionError::Host)?;
        let mut report = Vec::new();
        for (root, before) in &self.free_before {
            let (free, _) = space(Path::new(root)).map_err(ActionError::NotVerified)?;
            report.push(format!(
                "{root}: {} free (was {})",
                humansize::format_size(free, humansize::BINARY),
                humansize::format_size(*before, humansize::BINARY)
            ));
        }
        for service in &self.services {
            if let Ok(false) = run_command(&policy.is_active_command, service).await {
                report.push(format!("{service} not running"));
            }
        }
        Ok(report.join("; "))
    }
}

/// Starts `stopped` again with the policy's command, clearing each from the record once it
/// runs; returns what failed.
async fn start_again(
    policy: &CleanPolicy,
    record: &StoppedServices,
    stopped: &[String],
) -> Vec<String> {
    let mut failures = Vec::new();
    for service in stopped {
        match run_command(&policy.start_command, service).await {
            Ok(true) => {
                if let Err(error) = record.started(service) {
                    failures.push(format!("{service} started, but {error}"));
                }
            }
            Ok(false) => failures.push(format!("starting {service} failed")),
            Err(error) => failures.push(error),
        }
    }
    failures
}

/// After the agent's restart: starts every service a cleanup cut short left stopped;
/// returns what it did, for the log and the central journal.
pub async fn start_left_stopped(policy: &CleanPolicy, state_dir: &Path) -> Vec<String> {
    let record = StoppedServices::new(state_dir);
    let left = match record.list() {
        Ok(left) => left,
        Err(error) => {
            return vec![format!(
                "cannot read the record of stopped services: {error}"
            )]
        }
    };
    let mut notes = Vec::new();
    for stopped in left {
        let failures = start_again(policy, &record, std::slice::from_ref(&stopped.service)).await;
        notes.push(if failures.is_empty() {
            format!(
                "started {} again: run {} had stopped it when the agent was cut off",
                stopped.service, stopped.run
            )
        } else {
            format!(
                "could not start {} again after run {} stopped it: {}",
                stopped.service,
                stopped.run,
                failures.join("; ")
            )
        });
    }
    notes
}
