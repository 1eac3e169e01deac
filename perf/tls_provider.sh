#!/usr/bin/env bash
# Instructions per full TLS handshake for each rustls crypto provider, counted with
# callgrind (repeatable on a noisy machine). The client side (ring) is the same in every
# run, so the difference between providers is the server's.
#
#   perf/tls_provider.sh            # builds the bench binary, prints a table
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
BIN=$(cargo bench --bench tls_handshake --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "tls_handshake" and m.get("executable"):
        print(m["executable"])' | tail -1)
[[ -x $BIN ]] || { echo "no bench binary" >&2; exit 1; }
N=${N:-200}
count() { # provider version handshakes -> instructions
    local out
    out=$(mktemp)
    TLS_HANDSHAKES=$3 TLS_PROVIDER=$1 TLS_VERSION=$2 valgrind --tool=callgrind \
        --callgrind-out-file="$out" "$BIN" 2>&1 | grep -o 'Collected : [0-9]*' | grep -o '[0-9]*'
    rm -f "$out"
}
echo "| provider | TLS | instructions per full handshake (client + server) |"
echo "|---|---|---|"
for version in 1.3 1.2; do
    for provider in aws-lc-rs ring; do
        base=$(count "$provider" "$version" 0)
        total=$(count "$provider" "$version" "$N")
        echo "| $provider | $version | $(( (total - base) / N )) |"
    done
done
