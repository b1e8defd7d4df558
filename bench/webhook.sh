#!/usr/bin/env bash
# Benchmark: koji-remediator's webhook acknowledgement latency (p50, p99) and sustained rate
# with journaling on, under distinct alerts posted from a second process, beside the rate the
# same PostgreSQL reaches with pgbench inserting one row per transaction, so the ratio to
# the database's own limit shows. Not a test; never fails on timing.
#
# Env: DELIVERIES (default 20000), CONCURRENCY (default 16), PGBENCH_SECONDS (default 15).
set -euo pipefail
cd "$(dirname "$0")/.."

DELIVERIES=${DELIVERIES:-20000}
CONCURRENCY=${CONCURRENCY:-16}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-15}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/koji-runbook/target}"
cargo build --release --quiet -p koji-remediator -p koji-testkit
BIN="$CARGO_TARGET_DIR/release"
PGBENCH=$(ls /usr/lib/postgresql/*/bin/pgbench | sort -V | tail -1)
PORT=19877
WORK=$(mktemp -d /tmp/koji-bench-webhook.XXXXXX)
JOURNAL_DB=koji_bench_journal_$$
HUB_DB=koji_bench_hub_$$
PID=""
psql_admin() { psql -X -q -t -A -h 127.0.0.1 -U postgres "$@"; }
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    psql_admin -c "DROP DATABASE IF EXISTS $JOURNAL_DB WITH (FORCE)" -c "DROP DATABASE IF EXISTS $HUB_DB WITH (FORCE)" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

psql_admin -c "CREATE DATABASE $JOURNAL_DB" -c "CREATE DATABASE $HUB_DB"
head -c 24 /dev/urandom | base64 >"$WORK/webhook.token"
head -c 24 /dev/urandom | base64 >"$WORK/api.token"
cat >"$WORK/koji-remediator.toml" <<CONF
[server]
webhook_token_file = "$WORK/webhook.token"
api_token_file = "$WORK/api.token"

[journal]
url = "host=127.0.0.1 user=postgres dbname=$JOURNAL_DB"

[hub]
url = "host=127.0.0.1 user=postgres dbname=$HUB_DB"

# Every alert matches and claims a run (journaled as an escalation), so each delivery
# writes a delivery, an alert and a run row in one transaction.
[[rule]]
name = "bench"
alertname = "KojiBenchAlert"
action = "escalate"
policy = "notify"
CONF
"$BIN/koji-remediator" --config.file "$WORK/koji-remediator.toml" \
    --web.listen-address "127.0.0.1:$PORT" --log.level warn &
PID=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done

echo "machine: $(nproc) cores; PostgreSQL $(psql_admin -c 'SHOW server_version'), synchronous_commit=$(psql_admin -c 'SHOW synchronous_commit'), fsync=$(psql_admin -c 'SHOW fsync')"
echo "$DELIVERIES deliveries of one distinct alert each, $CONCURRENCY in flight"
webhook=$("$BIN/koji-fixture" post-alerts --url "http://127.0.0.1:$PORT/webhook/alertmanager" \
    --token "$(cat "$WORK/webhook.token")" --count "$DELIVERIES" --concurrency "$CONCURRENCY")
runs=$(psql_admin -d "$JOURNAL_DB" -c "SELECT count(*) FROM koji_remediator.action_runs")

psql_admin -d "$HUB_DB" -c "CREATE TABLE bench_rows (id bigserial PRIMARY KEY, payload text NOT NULL, created timestamptz NOT NULL DEFAULT now())"
echo "INSERT INTO bench_rows (payload) VALUES ('one alert');" >"$WORK/insert.sql"
pgbench_out=$("$PGBENCH" -h 127.0.0.1 -U postgres -n -f "$WORK/insert.sql" -c "$CONCURRENCY" -j 2 \
    -T "$PGBENCH_SECONDS" "$HUB_DB" 2>&1)
tps=$(awk '/^tps/ { print $3; exit }' <<<"$pgbench_out")

field() { tr ' ' '\n' <<<"$1" | awk -F= -v key="$2" '$1 == key { print $2 }'; }
rate=$(field "$webhook" rate)
printf '%-40s %10s %10s %12s\n' "" "p50 ms" "p99 ms" "per second"
printf '%-40s %10s %10s %12s\n' "koji-remediator webhook (journaled)" "$(field "$webhook" p50_ms)" "$(field "$webhook" p99_ms)" "$rate"
printf '%-40s %10s %10s %12.0f\n' "pgbench, one-row insert transactions" "" "" "$tps"
echo "ratio webhook deliveries / pgbench transactions: $(awk -v a="$rate" -v b="$tps" 'BEGIN { printf "%.2f", a / b }')"
echo "runs journaled: $runs of $DELIVERIES deliveries"
