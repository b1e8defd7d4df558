#!/usr/bin/env bash
# Benchmark: scrape latency and memory of koji-exporter's hub collectors against
# postgres_exporter (Debian's prometheus-postgres-exporter, default collectors) on the same
# Koji-shaped database, at two scales, side by side in one run. Prints figures and ratios;
# never fails on timing. Not a test.
#
# Both are scraped as Prometheus scrapes (its Accept header, Accept-Encoding: gzip), and
# the database time each scrape costs is read from pg_stat_statements.
#
# Usage: bench/hub_scrape.sh [small|large|all|scaling|busy]   (default all)
#   scaling: 500, 1,000, 2,000 and 4,000 hosts with 100k finished tasks (with `large`,
#   2,000 hosts at 5M, cost in finished tasks and in hosts).
#   busy: 2,000 hosts, 100k finished tasks, while Koji takes 500 events a second that
#   touch no host (a busy hub's tagging), so events move between any two scrapes.
# Env:   SCRAPES (default 1000) timed scrapes per exporter and scale; FLOOR_SCRAPES
#        (default 200) per hub collector run alone, for the database-time floor;
#        EVENTS_PER_SECOND (default 0, busy 500) events Koji takes during the timed scrapes.
set -euo pipefail
cd "$(dirname "$0")/.."

WHICH=${1:-all}
SCRAPES=${SCRAPES:-1000}
FLOOR_SCRAPES=${FLOOR_SCRAPES:-200}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/koji-runbook/target}"
PG_PORT=${PG_PORT:-5499}
OURS_PORT=19866
PEER_PORT=19187

if ! command -v prometheus-postgres-exporter >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-postgres-exporter >/dev/null
fi
cargo build --release --quiet -p koji-exporter -p koji-testkit
BIN="$CARGO_TARGET_DIR/release"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

WORK=$(mktemp -d /tmp/koji-bench.XXXXXX)
chown postgres: "$WORK"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# A private cluster with room for the connections a big hub holds.
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust --no-sync >/dev/null
cat >> "$WORK/data/postgresql.auto.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$WORK'
max_connections = 700
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
shared_buffers = 512MB
fsync = off
synchronous_commit = off
CONF
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w start >/dev/null

psql_admin() { psql -X -q -t -A -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }

wait_http() {
    for _ in $(seq 100); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "no answer from $1" >&2
    return 1
}

rss_kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }

field() { tr ' ' '\n' <<<"$1" | awk -F= -v key="$2" '$1 == key { print $2 }'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

run_scale() {
    local name=$1 hosts=$2 connections=$3 finished=$4 active=$5
    local db="koji_$name"
    local url="host=127.0.0.1 port=$PG_PORT user=postgres dbname=$db"
    echo
    echo "== $name: $hosts hosts, $connections idle connections, $finished finished tasks"
    psql_admin -c "CREATE DATABASE $db"
    local started=$SECONDS
    "$BIN/koji-fixture" generate --url "$url" --koji-version 1.33 --hosts "$hosts" \
        --extra-channels 12 --active-tasks "$active" --finished-tasks "$finished" >/dev/null
    echo "   generated in $((SECONDS - started)) s; task table $(psql_admin -d "$db" -c \
        "SELECT pg_size_pretty(pg_total_relation_size('task'))")"

    "$BIN/koji-fixture" hold-connections --url "$url" --count "$connections" >/dev/null &
    local hold=$!
    PIDS+=("$hold")
    for _ in $(seq 300); do
        [ "$(psql_admin -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db'")" -ge "$connections" ] && break
        sleep 0.2
    done

    KOJI_EXPORTER_DB_URL="$url" "$BIN/koji-exporter" --web.listen-address "127.0.0.1:$OURS_PORT" \
        --collector.disable-defaults --collector.koji_db --collector.koji_hosts \
        --collector.koji_tasks --collector.pg_stat_activity --log.level warn &
    local ours=$!
    PIDS+=("$ours")
    DATA_SOURCE_NAME="postgresql://postgres@127.0.0.1:$PG_PORT/$db?sslmode=disable" \
        prometheus-postgres-exporter --web.listen-address "127.0.0.1:$PEER_PORT" \
        --log.level=warn 2>/dev/null &
    local peer=$!
    PIDS+=("$peer")
    wait_http "http://127.0.0.1:$OURS_PORT/metrics"
    wait_http "http://127.0.0.1:$PEER_PORT/metrics"

    psql_admin -d "$db" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
    # Server-side statement time per scrape (warm-ups included in the count).
    local dbid
    dbid=$(psql_admin -c "SELECT oid FROM pg_database WHERE datname = '$db'")
    # db_ms [scrapes]: statement time per scrape over the last `scrapes` (+5 warm-ups).
    db_ms() {
        psql_admin -d "$db" -c "SELECT round((sum(total_exec_time) / (${1:-$SCRAPES} + 5))::numeric, 2)
                         FROM pg_stat_statements WHERE dbid = $dbid AND $ours_only"
    }
    # The event writer's statements are not the exporters'.
    local ours_only="query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%get_event%'
                     AND query NOT LIKE 'INSERT INTO events%'"
    local events=${EVENTS_PER_SECOND:-0} writer=""
    if [ "$events" -gt 0 ]; then
        # pgbench at a fixed rate, one `get_event()` (a new event, as every tagging takes)
        # per transaction, for as long as the timed scrapes last.
        echo "SELECT get_event();" > "$WORK/event.sql"
        "$PGBIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -f "$WORK/event.sql" \
            -R "$events" -T 3600 "$db" >/dev/null 2>&1 &
        writer=$!
        PIDS+=("$writer")
        echo "   Koji takes $events events a second (no host changes) during the timed scrapes"
    fi
    local ours_result peer_result ours_db peer_db ours_queries
    psql_admin -d "$db" -c "SELECT pg_stat_statements_reset()" >/dev/null
    ours_result=$("$BIN/koji-fixture" time-scrapes --gzip --url "http://127.0.0.1:$OURS_PORT/metrics" --count "$SCRAPES")
    ours_db=$(db_ms)
    ours_queries=$(psql_admin -d "$db" -F ' | ' -c "SELECT calls, round(mean_exec_time::numeric, 3),
                          left(regexp_replace(query, '\s+', ' ', 'g'), 70)
                     FROM pg_stat_statements WHERE dbid = $dbid AND $ours_only
                    ORDER BY total_exec_time DESC LIMIT 8")
    psql_admin -d "$db" -c "SELECT pg_stat_statements_reset()" >/dev/null
    peer_result=$("$BIN/koji-fixture" time-scrapes --gzip --url "http://127.0.0.1:$PEER_PORT/metrics" --count "$SCRAPES")
    peer_db=$(db_ms)
    if [ -n "$writer" ]; then
        kill "$writer" 2>/dev/null || true
        wait "$writer" 2>/dev/null || true
    fi
    local ours_rss peer_rss ours_hwm peer_hwm
    ours_rss=$(rss_kib "$ours" VmRSS); ours_hwm=$(rss_kib "$ours" VmHWM)
    peer_rss=$(rss_kib "$peer" VmRSS); peer_hwm=$(rss_kib "$peer" VmHWM)

    printf '   %-22s %10s %10s %10s %12s %10s %12s\n' exporter "median ms" "p99 ms" "db ms" "gzip KiB" "RSS KiB" "peak RSS KiB"
    printf '   %-22s %10s %10s %10s %12s %10s %12s\n' koji-exporter \
        "$(field "$ours_result" median_ms)" "$(field "$ours_result" p99_ms)" "$ours_db" \
        "$(( $(field "$ours_result" bytes) / 1024 ))" "$ours_rss" "$ours_hwm"
    printf '   %-22s %10s %10s %10s %12s %10s %12s\n' postgres_exporter \
        "$(field "$peer_result" median_ms)" "$(field "$peer_result" p99_ms)" "$peer_db" \
        "$(( $(field "$peer_result" bytes) / 1024 ))" "$peer_rss" "$peer_hwm"
    printf '   %-22s %10s %10s %10s %12s %10s %12s\n' "ratio (koji/peer)" \
        "$(ratio "$(field "$ours_result" median_ms)" "$(field "$peer_result" median_ms)")" \
        "$(ratio "$(field "$ours_result" p99_ms)" "$(field "$peer_result" p99_ms)")" \
        "$(ratio "$ours_db" "$peer_db")" "" \
        "$(ratio "$ours_rss" "$peer_rss")" "$(ratio "$ours_hwm" "$peer_hwm")"
    echo "   koji-exporter's statements (calls | mean ms | query):"
    sed 's/^/     /' <<<"$ours_queries"

    kill "$ours" "$peer" 2>/dev/null || true
    wait "$ours" "$peer" 2>/dev/null || true

    # The floor: each hub collector alone (its queries with nothing else running), its
    # statement time per scrape, summed; against the same with all four at once.
    local floor=0 alone collector one
    for collector in koji_db koji_hosts koji_tasks pg_stat_activity; do
        KOJI_EXPORTER_DB_URL="$url" "$BIN/koji-exporter" --web.listen-address "127.0.0.1:$OURS_PORT" \
            --collector.disable-defaults "--collector.$collector" --log.level warn &
        one=$!
        PIDS+=("$one")
        wait_http "http://127.0.0.1:$OURS_PORT/metrics"
        psql_admin -d "$db" -c "SELECT pg_stat_statements_reset()" >/dev/null
        "$BIN/koji-fixture" time-scrapes --gzip --url "http://127.0.0.1:$OURS_PORT/metrics" --count "$FLOOR_SCRAPES" >/dev/null
        alone=$(db_ms "$FLOOR_SCRAPES")
        echo "   $collector alone: $alone db ms per scrape"
        floor=$(awk -v a="$floor" -v b="$alone" 'BEGIN { print a + b }')
        kill "$one" 2>/dev/null || true
        wait "$one" 2>/dev/null || true
    done
    echo "   db ms per scrape: all four at once $ours_db, each alone summed (the floor) $floor, ratio $(ratio "$ours_db" "$floor")"

    kill "$hold" 2>/dev/null || true
    wait "$hold" 2>/dev/null || true
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)," \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); PostgreSQL $("$PGBIN/postgres" --version | awk '{ print $3 }');" \
    "$(prometheus-postgres-exporter --version 2>&1 | head -1)"
echo "$SCRAPES sequential scrapes per exporter after 5 warm-up scrapes; Prometheus' Accept header and Accept-Encoding: gzip"
case "$WHICH" in
    small) run_scale small 100 200 100000 300 ;;
    large) run_scale large 2000 500 5000000 3000 ;;
    all)
        run_scale small 100 200 100000 300
        run_scale large 2000 500 5000000 3000
        ;;
    scaling)
        for hosts in 500 1000 2000 4000; do
            run_scale "h$hosts" "$hosts" 500 100000 $((hosts * 3 / 2))
        done
        ;;
    busy) EVENTS_PER_SECOND=${EVENTS_PER_SECOND:-500} run_scale busy 2000 500 100000 3000 ;;
    *) echo "usage: $0 [small|large|all|scaling|busy]" >&2; exit 2 ;;
esac
