#!/usr/bin/env bash
# The whole loop as one command, for a person to watch: a private PostgreSQL with a Koji
# database and 30 connection slots, koji-exporter, koji-remediator, Prometheus (the real
# alert rules with `for:` shortened to 2 s) and Alertmanager, all on loopback ports. It then
# opens 18 idle `koji` connections, as a crashed hub leaves them, and shows the remediator
# terminating them. Everything started is stopped by PID at the end (or on Ctrl-C).
#
# Usage: tests/demo.sh      (needs the Debian packages tools/install-test-deps installs)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/koji-runbook/target}"
tools/install-test-deps >/dev/null
cargo build --release --quiet -p koji-exporter -p koji-remediator -p koji-testkit
BIN="$CARGO_TARGET_DIR/release"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d /tmp/koji-demo.XXXXXX)
chown postgres: "$WORK"
PIDS=()
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cleanup() {
    echo "stopping everything"
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
PG=$(port); EXPORTER=$(port); REMEDIATOR=$(port); PROM=$(port); AM=$(port)

runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust --no-sync >/dev/null
printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\nmax_connections = 30\nsuperuser_reserved_connections = 3\n" "$PG" "$WORK" >>"$WORK/pg/postgresql.auto.conf"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/postgres.log" -w start >/dev/null
psql -X -q -h 127.0.0.1 -p "$PG" -U postgres -c "CREATE DATABASE koji" -c "CREATE DATABASE journal" -c "CREATE ROLE koji LOGIN"
"$BIN/koji-fixture" generate --url "host=127.0.0.1 port=$PG user=postgres dbname=koji" --hosts 20 --finished-tasks 10000 >/dev/null

head -c 24 /dev/urandom | base64 >"$WORK/webhook.token"
head -c 24 /dev/urandom | base64 >"$WORK/api.token"
cat >"$WORK/exporter.toml" <<CONF
[database]
url = "host=127.0.0.1 port=$PG user=postgres dbname=koji"
stale_connection_age = "10s"
CONF
cat >"$WORK/remediator.toml" <<CONF
[server]
webhook_token_file = "$WORK/webhook.token"
api_token_file = "$WORK/api.token"
[journal]
url = "host=127.0.0.1 port=$PG user=postgres dbname=journal"
[hub]
url = "host=127.0.0.1 port=$PG user=postgres dbname=koji"
[[rule]]
name = "stale-db-connections"
alertname = "KojiDatabaseStaleConnections"
action = "terminate_stale_connections"
policy = "auto"
params = { users = ["koji"], older_than = "10s" }
CONF
sed -E 's/^( *)for: .*/\1for: 2s/' alerts/koji.rules.yml >"$WORK/koji.rules.yml"
cat >"$WORK/prometheus.yml" <<CONF
global: { scrape_interval: 2s, evaluation_interval: 2s }
rule_files: ['$WORK/koji.rules.yml']
alerting: { alertmanagers: [ { static_configs: [ { targets: ['127.0.0.1:$AM'] } ] } ] }
scrape_configs:
  - { job_name: koji-hub, static_configs: [ { targets: ['127.0.0.1:$EXPORTER'] } ] }
  - { job_name: koji-remediator, static_configs: [ { targets: ['127.0.0.1:$REMEDIATOR'] } ] }
CONF
cat >"$WORK/alertmanager.yml" <<CONF
route: { receiver: remediator, group_by: [alertname, instance], group_wait: 1s, group_interval: 1s, repeat_interval: 1h }
receivers:
  - name: remediator
    webhook_configs:
      - url: http://127.0.0.1:$REMEDIATOR/webhook/alertmanager
        send_resolved: true
        http_config: { authorization: { type: Bearer, credentials_file: $WORK/webhook.token } }
CONF

"$BIN/koji-exporter" --config.file "$WORK/exporter.toml" --web.listen-address "127.0.0.1:$EXPORTER" --log.level warn & PIDS+=($!)
"$BIN/koji-remediator" --config.file "$WORK/remediator.toml" --web.listen-address "127.0.0.1:$REMEDIATOR" --log.level warn & PIDS+=($!)
prometheus-alertmanager --config.file="$WORK/alertmanager.yml" --storage.path="$WORK/am" --web.listen-address="127.0.0.1:$AM" \
    --web.external-url="http://127.0.0.1:$AM" --cluster.listen-address= --log.level=warn 2>"$WORK/am.log" & PIDS+=($!)
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom" --web.listen-address="127.0.0.1:$PROM" \
    --web.external-url="http://127.0.0.1:$PROM" --rules.alert.resend-delay=1s --log.level=warn 2>"$WORK/prom.log" & PIDS+=($!)
sleep 3
echo "Prometheus http://127.0.0.1:$PROM  Alertmanager http://127.0.0.1:$AM  exporter http://127.0.0.1:$EXPORTER/metrics"
echo "opening 18 idle koji connections (a crashed hub's leftovers)..."
"$BIN/koji-fixture" hold-connections --url "host=127.0.0.1 port=$PG user=koji dbname=koji application_name=httpd" --count 18 >/dev/null & PIDS+=($!)
start=$(date +%s)
for _ in $(seq 120); do
    stale=$(curl -s "http://127.0.0.1:$EXPORTER/metrics" | awk '/^koji_db_stale_connections\{.*usename="koji"\}/ { print $2 }')
    runs=$(curl -s -H "Authorization: Bearer $(cat "$WORK/api.token")" "http://127.0.0.1:$REMEDIATOR/api/v1/journal")
    printf '%3ss  stale koji connections: %-5s remediator runs: %s\n' "$(( $(date +%s) - start ))" "${stale:-?}" \
        "$(python3 -c 'import json,sys; print("; ".join(r["state"]+": "+r["outcome"] for r in json.load(sys.stdin)) or "none yet")' <<<"$runs")"
    grep -q '"succeeded"' <<<"$runs" && { echo "fixed after $(( $(date +%s) - start )) s"; break; }
    sleep 2
done
