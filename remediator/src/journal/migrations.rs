//! The journal's schema, versioned. Applied at start under an advisory lock, so several
//! remediator replicas starting together migrate once. Hand-written rather than a migration
//! crate: a list of statements and a version table is all this needs, and it keeps every
//! statement visible here.

/// Advisory lock key held while migrating ("koji-rem" in ASCII).
pub const MIGRATION_LOCK: i64 = 0x6b6f_6a69_2d72_656d;

/// Migrations in order; never edit one that has shipped, add another.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "
CREATE TABLE koji_remediator.deliveries (
    id bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    receiver text NOT NULL,
    group_key text NOT NULL,
    status text NOT NULL,
    alert_count integer NOT NULL
);

CREATE TABLE koji_remediator.alerts (
    id bigserial PRIMARY KEY,
    delivery_id bigint NOT NULL REFERENCES koji_remediator.deliveries (id),
    received_at timestamptz NOT NULL DEFAULT now(),
    fingerprint text NOT NULL,
    status text NOT NULL,
    alertname text NOT NULL,
    labels jsonb NOT NULL,
    annotations jsonb NOT NULL,
    starts_at timestamptz NOT NULL,
    rule text,
    decision text NOT NULL,
    detail text NOT NULL DEFAULT ''
);
CREATE INDEX alerts_by_received ON koji_remediator.alerts (received_at DESC);

-- One row per (alert occurrence, action, kind): the unique key is the idempotency guard
-- that holds across repeated deliveries, Alertmanager replicas and remediator replicas.
CREATE TABLE koji_remediator.action_runs (
    id bigserial PRIMARY KEY,
    fingerprint text NOT NULL,
    starts_at timestamptz NOT NULL,
    action text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('apply', 'restore')),
    rule text NOT NULL,
    policy text NOT NULL,
    target text NOT NULL,
    labels jsonb NOT NULL,
    state text NOT NULL,
    plan jsonb,
    plan_summary text,
    outcome text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    UNIQUE (fingerprint, starts_at, action, kind)
);
CREATE INDEX action_runs_by_target ON koji_remediator.action_runs (action, target, started_at);
CREATE INDEX action_runs_by_state ON koji_remediator.action_runs (state);

CREATE TABLE koji_remediator.settings (
    key text PRIMARY KEY,
    value jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL
);
",
    ),
    (
        2,
        "
-- Escalations: who decided, when, why.
ALTER TABLE koji_remediator.action_runs
    ADD COLUMN decided_by text,
    ADD COLUMN decided_at timestamptz,
    ADD COLUMN decision_reason text;
",
    ),
    (
        3,
        "
-- The outage notice sent for an escalation, and how its delivery went.
ALTER TABLE koji_remediator.action_runs ADD COLUMN notice text;
",
    ),
    (
        4,
        "
-- The durable run lifecycle: runs are owned by a replica under a lease renewed while it
-- works; `effect` says whether a run changed anything (the cooldown counts only those that
-- did or may have); `attempts` counts starts, bounded when a run is retried after its
-- replica died before applying.
ALTER TABLE koji_remediator.action_runs
    ADD COLUMN owner text,
    ADD COLUMN lease_until timestamptz,
    ADD COLUMN effect text NOT NULL DEFAULT 'none',
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN applying_at timestamptz;
UPDATE koji_remediator.action_runs SET effect = 'changed' WHERE state = 'succeeded';
UPDATE koji_remediator.action_runs SET effect = 'unknown' WHERE state IN ('failed', 'interrupted');
-- A run an earlier release left running has no lease: the reconciler takes it at once, and
-- since that release applied without journaling `applying` first, it is resolved from the
-- world like an interrupted apply.
UPDATE koji_remediator.action_runs
   SET state = 'applying', lease_until = now(), applying_at = started_at
 WHERE state = 'running';
CREATE INDEX action_runs_in_flight ON koji_remediator.action_runs (action, lease_until)
    WHERE state IN ('running', 'applying');
CREATE INDEX action_runs_by_occurrence ON koji_remediator.action_runs (fingerprint, starts_at);

-- Occurrences end: a firing notification of an occurrence whose resolution is journaled
-- acts on nothing.
CREATE INDEX alerts_by_occurrence ON koji_remediator.alerts (fingerprint, starts_at, status);

-- The outbox: notices to on-call, sent apart from the actions' concurrency, retried
-- across restarts until delivered or given up.
CREATE TABLE koji_remediator.notices (
    id bigserial PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES koji_remediator.action_runs (id),
    reason text NOT NULL,
    state text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    owner text,
    lease_until timestamptz,
    delivered jsonb NOT NULL DEFAULT '{}',
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    UNIQUE (run_id, reason)
);
CREATE INDEX notices_due ON koji_remediator.notices (next_attempt_at) WHERE state = 'pending';
",
    ),
    (
        5,
        "
-- Restores wait until their target has been quiet for the rule's restore_after: a pending
-- run is not tried again before not_before ('infinity' while an alert of the action fires
-- for the target; reset whenever a delivery concerns the target).
ALTER TABLE koji_remediator.action_runs ADD COLUMN not_before timestamptz;
CREATE INDEX action_runs_pending ON koji_remediator.action_runs (action, id)
    WHERE state = 'pending';
",
    ),
    (
        6,
        "
-- The alert's graph in Prometheus (Alertmanager's generatorURL), for the approval page.
ALTER TABLE koji_remediator.alerts ADD COLUMN generator_url text NOT NULL DEFAULT '';
",
    ),
    (
        7,
        "
-- How far a long action got (drain_and_reboot: disabled, drained, reboot asked, seen down,
-- checked in), saved by the replica applying it, so a replica taking it over resumes it.
ALTER TABLE koji_remediator.action_runs ADD COLUMN progress jsonb;
",
    ),
];
