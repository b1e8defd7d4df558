#!/usr/bin/env bash
# Benchmark: what TLS costs a scrape. koji-exporter and node_exporter (filesystem collector
# only, on this machine's mounts) each serve plain HTTP and mutual TLS (the same web config
# file format, the same throwaway CA and certificates), scraped with a kept-alive
# connection as Prometheus does, and with a new connection and handshake per scrape. Prints
# medians and p99s and the ratios to node_exporter. Not a test; never fails on timing.
#
# Env: SCRAPES (default 300) timed scrapes per case.
set -euo pipefail
cd "$(dirname "$0")/.."

SCRAPES=${SCRAPES:-300}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/koji-runbook/target}"
if ! command -v prometheus-node-exporter >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-node-exporter >/dev/null
fi
cargo build --release --quiet -p koji-exporter -p koji-testkit
BIN="$CARGO_TARGET_DIR/release"

WORK=$(mktemp -d /tmp/koji-bench-tls.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# A CA, a server certificate for 127.0.0.1 and a client certificate (EC P-256, as rcgen
# makes in the tests).
cd "$WORK"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -subj /CN=bench-ca -days 1 -out ca.crt 2>/dev/null
for name in server client; do
    openssl ecparam -name prime256v1 -genkey -noout -out "$name.key.ec"
    openssl pkcs8 -topk8 -nocrypt -in "$name.key.ec" -out "$name.key"
    openssl req -new -key "$name.key" -subj "/CN=$name" -out "$name.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:%s.example.org\nextendedKeyUsage=serverAuth,clientAuth\n' "$name" >"$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
        -extfile "$name.ext" -out "$name.crt" 2>/dev/null
done
cat >web.yml <<YML
tls_server_config:
  cert_file: $WORK/server.crt
  key_file: $WORK/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: $WORK/ca.crt
YML
printf '[[filesystems.paths]]\npath = "/"\nrole = "local"\n' >koji.toml
cd - >/dev/null

start() { "$@" & PIDS+=("$!"); }
koji() {
    start "$BIN/koji-exporter" --config.file "$WORK/koji.toml" --web.listen-address "127.0.0.1:$1" \
        --collector.disable-defaults --collector.filesystems --log.level warn "${@:2}"
}
node() {
    start prometheus-node-exporter --web.listen-address "127.0.0.1:$1" \
        --collector.disable-defaults --collector.filesystem --log.level=warn "${@:2}"
}
koji 19870
koji 19871 --web.config.file "$WORK/web.yml"
node 19170
node 19171 --web.config.file="$WORK/web.yml"
sleep 1

field() { tr ' ' '\n' <<<"$1" | awk -F= -v key="$2" '$1 == key { print $2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
tls=(--ca-file "$WORK/ca.crt" --client-cert "$WORK/client.crt" "$WORK/client.key")
declare -A median
printf '%-44s %10s %10s\n' case "median ms" "p99 ms"
run() {
    local name=$1 url=$2
    shift 2
    local result
    result=$("$BIN/koji-fixture" time-scrapes --url "$url" --count "$SCRAPES" "$@")
    median[$name]=$(field "$result" median_ms)
    printf '%-44s %10s %10s\n' "$name" "$(field "$result" median_ms)" "$(field "$result" p99_ms)"
}
run "node_exporter plain" http://127.0.0.1:19170/metrics
run "koji-exporter plain" http://127.0.0.1:19870/metrics
run "node_exporter mTLS, kept alive" https://127.0.0.1:19171/metrics "${tls[@]}"
run "koji-exporter mTLS, kept alive" https://127.0.0.1:19871/metrics "${tls[@]}"
run "node_exporter mTLS, new connection each" https://127.0.0.1:19171/metrics "${tls[@]}" --new-connections
run "koji-exporter mTLS, new connection each" https://127.0.0.1:19871/metrics "${tls[@]}" --new-connections
echo "ratio koji / node_exporter: plain $(ratio "${median[koji-exporter plain]}" "${median[node_exporter plain]}")," \
    "mTLS kept alive $(ratio "${median[koji-exporter mTLS, kept alive]}" "${median[node_exporter mTLS, kept alive]}")," \
    "mTLS new connection $(ratio "${median[koji-exporter mTLS, new connection each]}" "${median[node_exporter mTLS, new connection each]}")"
echo "TLS overhead, kept alive: koji $(ratio "${median[koji-exporter mTLS, kept alive]}" "${median[koji-exporter plain]}")x," \
    "node_exporter $(ratio "${median[node_exporter mTLS, kept alive]}" "${median[node_exporter plain]}")x"
