//! What runs after the webhook answered: the [`executor`] of claimed runs, the
//! [`reconciler`] that keeps every run moving across journal outages, crashes and replicas,
//! the [`outbox`] sender of notices, on-call's [`escalations`] decisions, and the ways out
//! to other systems: [`forwarding`] to agents, [`silences`] in Alertmanager, [`notify`]
//! for outage notices.

pub mod escalations;
pub mod executor;
pub mod forwarding;
pub mod notify;
pub mod outbox;
pub mod reconciler;
pub mod silences;
