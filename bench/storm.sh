#!/usr/bin/env bash
# Benchmark: an alert storm from a whole fleet through the highly available setup (two
# clustered Alertmanagers, two koji-remediator replicas, a journal on a primary with a
# synchronous streaming standby), with one replica killed and the journal failed over
# mid-storm. The storm loop test at full size, release build; prints its figures (time
# until every alert is journaled and every run has ended, the most runs of one action in
# flight, deliveries vs alerts vs runs, restore time). Never fails on timing. Not a test.
#
# Usage: bench/storm.sh            Env: STORM_HOSTS (default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/koji-runbook/target}"
export STORM_HOSTS="${STORM_HOSTS:-2000}"
tools/install-test-deps >/dev/null
cargo build --release --quiet -p koji-remediator
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
log=$(mktemp)
status=0
cargo nextest run --release --no-capture -p koji-e2e --test storm_loop >"$log" 2>&1 || status=$?
sed -n '/^storm of/,/restored/p' "$log"
if [ "$status" -ne 0 ]; then
    echo "the storm loop failed:"
    grep -A3 'panicked' "$log" || tail -40 "$log"
fi
rm -f "$log"
exit "$status"
