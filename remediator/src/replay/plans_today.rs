//! `replay --plan`: each fix the runbook under test would run gets its plan made against
//! the hub as it is today, through a session that cannot write
//! (`default_transaction_read_only`), so a replay can show what a proposed runbook would
//! change now, marked as today's and not the past's. Restores undo their own fix's change
//! and are not planned; host-local actions are planned by the machine's own agent, which
//! a replay does not ask.

use deadpool_postgres::Pool;

use super::fate::Fate;
use super::input::Notification;
use super::model::Decided;
use crate::actions::{ActionContext, Planned};
use crate::config::Config;
use crate::lifecycle::Decision;

/// Today's plan, in words, for each notification whose fix would run (`None` otherwise).
pub async fn plans_today(
    config: &Config,
    hub: Pool,
    notifications: &[Notification],
    decided: &[Decided],
) -> Vec<Option<String>> {
    let context = ActionContext {
        hub: Some(hub),
        koji_user: config
            .hub
            .as_ref()
            .map(|hub| hub.koji_user.clone())
            .unwrap_or_default(),
        agent: None,
        forwarder: None,
        journal_id: String::new(),
        progress: None,
    };
    let mut plans = Vec::with_capacity(decided.len());
    for (notification, decided) in notifications.iter().zip(decided) {
        let would_run = matches!(decided.decision, Decision::Run | Decision::AwaitingApproval)
            && matches!(
                decided.fate,
                Fate::Started(_) | Fate::AwaitingApproval | Fate::Waiting
            );
        let rule = decided
            .rule
            .as_ref()
            .and_then(|name| config.rules.iter().find(|rule| &rule.name == name));
        let Some(rule) = rule.filter(|_| would_run) else {
            plans.push(None);
            continue;
        };
        let words = if rule.action.is_host_local() {
            "planned on the machine by its agent; not asked in a replay".to_owned()
        } else {
            match rule
                .action
                .plan(&context, &rule.params, &notification.alert.labels)
                .await
            {
                Ok(Planned::Change(plan)) => plan.summary(),
                Ok(Planned::NothingToDo(reason)) => format!("nothing to do: {reason}"),
                Ok(Planned::Refused(reason)) => format!("refused: {reason}"),
                Err(error) => format!("cannot be planned: {error}"),
            }
        };
        plans.push(Some(words));
    }
    plans
}
