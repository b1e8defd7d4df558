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
];
