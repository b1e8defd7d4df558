//! The notice sender: takes due notices from the journal's outbox, one at a time per
//! sender, makes one attempt on every channel that has not taken it yet, and journals the
//! attempt (delivered, retry later, or given up after `notify.attempts`). It holds no
//! action's concurrency slot, and a notice queued before a crash is sent after the restart
//! by whichever replica gets there first.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::notify::{NoticeContext, Notifier};
use crate::journal::notices::{Attempt, DueNotice};
use crate::journal::runs::Lease;
use crate::journal::{Journal, JournalError};
use crate::lifecycle::{NoticeReason, Policy};

/// Longest one attempt may hold a claimed notice (a mail relay may take 30 s).
const CLAIM_HOLD: Duration = Duration::from_secs(120);

/// Notices sent at the same time by one replica.
const SENDERS: usize = 4;

/// The notice sender of one replica.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// The journal.
    pub journal: Journal,
    /// Delivers notices.
    pub notifier: Notifier,
    /// This replica's identity, for claims.
    pub lease: Lease,
    /// Woken when a notice is queued.
    pub wake: Arc<Notify>,
}

impl Outbox {
    /// Sends due notices until `stop`.
    pub fn spawn(self, stop: CancellationToken) {
        let slots = Arc::new(tokio::sync::Semaphore::new(SENDERS));
        tokio::spawn(async move {
            loop {
                loop {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    match self.journal.claim_due_notice(&self.lease, CLAIM_HOLD).await {
                        Ok(Some(notice)) => {
                            let this = self.clone();
                            tokio::spawn(async move {
                                if let Err(error) = this.send(&notice).await {
                                    tracing::warn!(notice = notice.id, %error, "cannot journal a notice attempt; it is tried again");
                                }
                                drop(permit);
                            });
                        }
                        Ok(None) => break,
                        Err(error) => {
                            tracing::warn!(%error, "cannot read the notice outbox");
                            break;
                        }
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = self.wake.notified() => {}
                }
            }
        });
    }

    async fn send(&self, notice: &DueNotice) -> Result<(), JournalError> {
        let Some(run) = self.journal.run(notice.run_id).await? else {
            return Ok(());
        };
        let annotations = self
            .journal
            .annotations(&run.fingerprint, &run.starts_at)
            .await?;
        let summary = run
            .plan
            .as_ref()
            .map(|plan| plan.summary())
            .or(run.plan_summary.clone())
            .unwrap_or_default();
        let alertname = run.labels.get("alertname").cloned().unwrap_or_default();
        let plan = match notice.reason {
            NoticeReason::Escalation => {
                format!("{alertname} needs a human: no automatic fix is configured")
            }
            NoticeReason::Approval => summary,
            NoticeReason::Failure => format!(
                "the automatic fix FAILED and needs a human: {}",
                run.outcome
            ),
            NoticeReason::CapReached => format!(
                "the automatic fix keeps being needed and needs a human: {}",
                run.outcome
            ),
            NoticeReason::Interrupted => format!(
                "the automatic fix was INTERRUPTED and needs a human: {}",
                run.outcome
            ),
        };
        let policy = match notice.reason {
            NoticeReason::Approval => Policy::Approve,
            _ => Policy::Notify,
        };
        let context = NoticeContext {
            run: run.id,
            alertname,
            labels: run.labels.clone(),
            summary: annotations.get("summary").cloned().unwrap_or_default(),
            description: annotations.get("description").cloned().unwrap_or_default(),
            since: run.starts_at.to_rfc3339(),
            plan,
            policy: policy.name().into(),
            contact: self.notifier.contact().into(),
        };
        let text = match self.notifier.render(&context) {
            Ok(text) => text,
            Err(error) => format!("(the notice template failed: {error})"),
        };
        let number = notice.attempts + 1;
        let mut delivered = notice.delivered.clone();
        let failures = self
            .notifier
            .attempt(&context, &text, number, &mut delivered)
            .await;
        let done: Vec<&str> = delivered.values().map(String::as_str).collect();
        let attempt = if failures.is_empty() {
            Attempt::Delivered {
                journal_text: format!("{}\n{text}", done.join("; ")),
            }
        } else if number as u32 >= self.notifier.attempts() {
            let error = failures.join("; ");
            tracing::error!(run = run.id, %error, "outage notice not delivered; given up");
            let mut said = vec![format!("not delivered after {number} attempt(s): {error}")];
            said.extend(done.iter().map(|d| d.to_string()));
            Attempt::GiveUp {
                journal_text: format!("{}\n{text}", said.join("; ")),
                error,
            }
        } else {
            let error = failures.join("; ");
            tracing::warn!(run = run.id, attempt = number, %error, "outage notice not delivered; trying again");
            Attempt::Retry {
                after: self.notifier.retry_delay(),
                error,
            }
        };
        let notice = DueNotice {
            delivered,
            ..notice.clone()
        };
        self.journal
            .record_notice_attempt(&notice, &self.lease, &attempt)
            .await
    }
}
