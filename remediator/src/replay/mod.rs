//! `koji-remediator replay`: what a runbook would have done with past alerts. The alerts a
//! journal received over a period (read in one read-only snapshot), or a file of captured
//! Alertmanager payloads, are replayed in their original order and timing through the
//! given runbook with all its guards ([`model`]); nothing is applied and nothing is
//! written anywhere. The report ([`report`]) sets what happened then ([`fate`], from the
//! journal) beside what the runbook would do, marks every difference, and counts both per
//! rule and per target; rows it cannot read are set aside with the reason ([`input`]).

pub mod fate;
pub mod input;
pub mod model;
pub mod plans_today;
pub mod report;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::config::sections::DatabaseConfig;
use crate::config::{Config, HUB_URL_ENV, JOURNAL_URL_ENV};
use crate::journal::{Journal, JournalError};
use input::ReplayInput;
use report::Report;

/// Where the past comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A journal (the running one's, or a copy), over `[from, until)`.
    Journal {
        /// How to reach it.
        database: DatabaseConfig,
        /// The URL was given on the command line: the environment does not override it.
        url_given: bool,
        /// The period's start.
        from: DateTime<Utc>,
        /// The period's end.
        until: DateTime<Utc>,
    },
    /// Captured payloads, one per line (see [`ReplayInput::from_payloads`]).
    Payloads(PathBuf),
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The journal could not be reached or read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// No pool could be made for it.
    #[error(transparent)]
    Database(#[from] crate::database::DatabaseError),
    /// The payload file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Replays `source` through `config` (named `runbook` in the report); with `plan_hub`,
/// each fix that would run is also planned against that hub database today, read-only.
pub async fn replay(
    config: &Config,
    runbook: String,
    source: Source,
    plan_hub: Option<&DatabaseConfig>,
) -> Result<Report, ReplayError> {
    let (input, from, until, source_name) = match source {
        Source::Journal {
            database,
            url_given,
            from,
            until,
        } => {
            let env = (!url_given).then_some(JOURNAL_URL_ENV);
            let pool = crate::database::read_only_pool(&database, "journal.url", env)?;
            // The guards look back: the period is replayed from a warm-up before it (the
            // longest cooldown, and at least the hourly limit's hour), reported from `from`.
            let history = Journal::new(pool)
                .history(from - warm_up(config), until)
                .await?;
            (
                ReplayInput::from_journal(&history),
                Some(from),
                until,
                "the journal".to_owned(),
            )
        }
        Source::Payloads(path) => {
            let text = std::fs::read_to_string(&path).map_err(|source| ReplayError::Read {
                path: path.clone(),
                source,
            })?;
            let input = ReplayInput::from_payloads(&text);
            let until = input
                .notifications
                .last()
                .map_or_else(Utc::now, |last| last.received_at);
            (input, None, until, path.display().to_string())
        }
    };
    let decided = model::replay(config, &input, until);
    let plans = match plan_hub {
        Some(hub) => {
            let pool = crate::database::read_only_pool(hub, "hub.url", Some(HUB_URL_ENV))?;
            plans_today::plans_today(config, pool, &input.notifications, &decided).await
        }
        None => Vec::new(),
    };
    Ok(Report::new(
        source_name,
        runbook,
        from,
        until,
        &input,
        decided,
        plans,
    ))
}

/// How far back the guards look: the longest cooldown, and at least an hour.
fn warm_up(config: &Config) -> chrono::Duration {
    let longest = config
        .rules
        .iter()
        .map(|rule| config.cooldown(rule))
        .max()
        .unwrap_or_default()
        .max(std::time::Duration::from_secs(3600));
    chrono::Duration::from_std(longest).unwrap_or(chrono::Duration::days(7))
}
