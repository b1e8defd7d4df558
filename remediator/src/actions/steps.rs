//! The one apply → verify routine, shared by the central executor and the agent, so both
//! say the same about what a plan did: whether it succeeded and whether it changed the
//! world (`effect`), in words for the journal.

use koji_config::error_chain::error_chain;

use super::{ActionContext, Plan};
use crate::lifecycle::Effect;

/// What applying and verifying a plan came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// Applied and verified.
    pub succeeded: bool,
    /// What it did to the world.
    pub effect: Effect,
    /// What happened.
    pub outcome: String,
}

/// Applies `plan` for run `run`, then verifies it.
pub async fn apply_and_verify(plan: &Plan, context: &ActionContext, run: i64) -> Applied {
    let applied = match plan.apply(context, run).await {
        Ok(applied) => applied,
        Err(error) => {
            let (effect, said) = if error.changed_nothing() {
                (Effect::None, "apply failed before changing anything")
            } else {
                (Effect::Unknown, "apply failed")
            };
            return Applied {
                succeeded: false,
                effect,
                outcome: format!("{said}: {}", error_chain(&error)),
            };
        }
    };
    match plan.verify(context).await {
        Ok(verified) => Applied {
            succeeded: true,
            effect: Effect::Changed,
            outcome: format!("{applied}; verified: {verified}"),
        },
        Err(error) => Applied {
            succeeded: false,
            effect: Effect::Changed,
            outcome: format!("{applied}; {}", error_chain(&error)),
        },
    }
}
