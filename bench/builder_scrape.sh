#!/usr/bin/env bash
# Benchmark: scrape latency and memory of koji-exporter's builder collectors against
# node_exporter with only its filesystem collector, on the same machine and mounts (the
# machine's own plus seven tmpfs standing in for a builder's watched paths). Prints both and
# the ratios. Not a test; never fails on timing.
#
# Env: SCRAPES (default 500) timed scrapes per exporter.
set -euo pipefail
cd "$(dirname "$0")/.."

SCRAPES=${SCRAPES:-500}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/koji-runbook/target}"
if ! command -v prometheus-node-exporter >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-node-exporter >/dev/null
fi
cargo build --release --quiet -p koji-exporter -p koji-testkit
BIN="$CARGO_TARGET_DIR/release"

WORK=$(mktemp -d /tmp/koji-bench-builder.XXXXXX)
PIDS=()
MOUNTS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for mount in "${MOUNTS[@]}"; do umount -l "$mount" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# A builder's watched paths, each on a file system of its own.
config="$WORK/koji-exporter.toml"
printf '[web]\nscrape_timeout = "10s"\n\n[builddirs]\nroots = ["%s", "%s"]\n\n[filesystems]\n' \
    "$WORK/var/lib/mock" "$WORK/mnt/build" >"$config"
printf '[[filesystems.paths]]\npath = "/"\nrole = "local"\n' >>"$config"
for spec in var/lib/mock:local mnt/build:local mnt/koji:shared pub/fedora:shared \
    pub/epel:shared mnt/ntap-fedora1/scratch:shared var/cache:local; do
    path="$WORK/${spec%%:*}"
    mkdir -p "$path"
    mount -t tmpfs -o size=512m "bench-${spec%%:*}" "$path"
    MOUNTS+=("$path")
    printf '[[filesystems.paths]]\npath = "%s"\nrole = "%s"\n' "$path" "${spec##*:}" >>"$config"
done
"$BIN/koji-fixture" make-tree --root "$WORK/var/lib/mock" --dirs 200 --files-per-dir 50 >/dev/null

start() { "$@" & PIDS+=("$!"); }
wait_http() {
    for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
    echo "no answer from $1" >&2; return 1
}
rss_kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }
field() { tr ' ' '\n' <<<"$1" | awk -F= -v key="$2" '$1 == key { print $2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

start "$BIN/koji-exporter" --config.file "$config" --web.listen-address 127.0.0.1:19867 \
    --collector.disable-defaults --collector.filesystems --log.level warn
fs_only=${PIDS[-1]}
start "$BIN/koji-exporter" --config.file "$config" --web.listen-address 127.0.0.1:19868 \
    --collector.disable-defaults --collector.filesystems --collector.builder_health \
    --collector.services --collector.builddirs --log.level warn
builder=${PIDS[-1]}
start prometheus-node-exporter --web.listen-address 127.0.0.1:19100 \
    --collector.disable-defaults --collector.filesystem --log.level=warn
node=${PIDS[-1]}
for port in 19867 19868 19100; do wait_http "http://127.0.0.1:$port/metrics"; done

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(grep -c . /proc/self/mountinfo) mounts;" \
    "$(prometheus-node-exporter --version 2>&1 | head -1)"
echo "$SCRAPES sequential scrapes each after 5 warm-up scrapes"
printf '%-34s %10s %10s %10s %10s\n' exporter "median ms" "p99 ms" "KiB" "RSS KiB"
declare -A median
for entry in "node_exporter (filesystem):19100:$node" "koji-exporter (filesystems):19867:$fs_only" \
    "koji-exporter (builder collectors):19868:$builder"; do
    IFS=: read -r name port pid <<<"$entry"
    result=$("$BIN/koji-fixture" time-scrapes --url "http://127.0.0.1:$port/metrics" --count "$SCRAPES")
    median[$port]=$(field "$result" median_ms)
    printf '%-34s %10s %10s %10s %10s\n' "$name" "$(field "$result" median_ms)" \
        "$(field "$result" p99_ms)" "$(( $(field "$result" bytes) / 1024 ))" "$(rss_kib "$pid" VmRSS)"
done
echo "median ratio koji filesystems / node_exporter filesystem: $(ratio "${median[19867]}" "${median[19100]}")"
echo "median ratio koji builder collectors / node_exporter filesystem: $(ratio "${median[19868]}" "${median[19100]}")"
