#!/usr/bin/env bash
# Benchmark: koji-exporter's build-directory scan against `du -s -B1 -x` on the same warm
# tree (default 1,000,000 files in 10,000 directories). Prints wall times, their ratio,
# both byte totals and both peaks of resident memory. Not a test; never fails on timing.
#
# Usage: bench/builddir_scan.sh [TREE_DIR]   (default /var/tmp/koji-bench-tree, kept for reuse)
# Env:   DIRS (10000), FILES_PER_DIR (100), RUNS (5)
set -euo pipefail
cd "$(dirname "$0")/.."

TREE=${1:-/var/tmp/koji-bench-tree}
DIRS=${DIRS:-10000}
FILES_PER_DIR=${FILES_PER_DIR:-100}
RUNS=${RUNS:-5}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/koji-runbook/target}"
if ! command -v hyperfine >/dev/null || [ ! -x /usr/bin/time ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine time >/dev/null
fi
cargo build --release --quiet -p koji-testkit -p koji-exporter --example scan_dir
BIN="$CARGO_TARGET_DIR/release"

marker="$TREE/.koji-bench-$DIRS-$FILES_PER_DIR"
if [ ! -e "$marker" ]; then
    rm -rf "$TREE"
    echo "making $DIRS directories of $FILES_PER_DIR files in $TREE"
    "$BIN/koji-fixture" make-tree --root "$TREE" --dirs "$DIRS" --files-per-dir "$FILES_PER_DIR" >/dev/null
    touch "$marker"
fi

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo);" \
    "tree on $(df --output=fstype "$TREE" | tail -1) ($(findmnt -n -o SOURCE --target "$TREE")); $(du --version | head -1)"
du -s -B1 -x "$TREE" >/dev/null # warm the caches
ours_bytes=$("$BIN/examples/scan_dir" "$TREE" | tr ' ' '\n' | awk -F= '$1 == "bytes" { print $2 }')
du_bytes=$(du -s -B1 -x "$TREE" | cut -f1)
hyperfine --warmup 1 --runs "$RUNS" --export-json /tmp/koji-bench-scan.json \
    -n du "du -s -B1 -x $TREE" -n koji-scan "$BIN/examples/scan_dir $TREE" >/dev/null
read -r du_mean ours_mean < <(python3 - <<'PY'
import json
results = {r["command"]: r["mean"] for r in json.load(open("/tmp/koji-bench-scan.json"))["results"]}
print(results["du"], results["koji-scan"])
PY
)
peak_rss() { /usr/bin/time -o /tmp/koji-bench-rss -f %M "$@" >/dev/null && cat /tmp/koji-bench-rss; }
du_rss=$(peak_rss du -s -B1 -x "$TREE")
ours_rss=$(peak_rss "$BIN/examples/scan_dir" "$TREE")

printf '%-12s %12s %16s %14s\n' tool "mean s" "bytes" "peak RSS KiB"
printf '%-12s %12.3f %16s %14s\n' "du -s -B1 -x" "$du_mean" "$du_bytes" "$du_rss"
printf '%-12s %12.3f %16s %14s\n' koji-scan "$ours_mean" "$ours_bytes" "$ours_rss"
printf '%-12s %12s %16s %14s\n' "ratio" "$(awk -v a="$ours_mean" -v b="$du_mean" 'BEGIN { printf "%.2f", a / b }')" \
    "$([ "$ours_bytes" = "$du_bytes" ] && echo same || echo DIFFERENT)" \
    "$(awk -v a="$ours_rss" -v b="$du_rss" 'BEGIN { printf "%.2f", a / b }')"
