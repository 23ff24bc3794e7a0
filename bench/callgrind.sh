#!/usr/bin/env bash
# callgrind.sh: instructions per operation of `tiercache bench --trace`, which do not drift with the
# machine's load (docs/PERFORMANCE.md compares builds and settings with it).
#
#   bench/callgrind.sh BUILD_DIR TIERING TRACE [REQUESTS]      (default 1000000 requests)
#
# Runs the replay under `valgrind --tool=callgrind` twice, over REQUESTS and over REQUESTS/5 of the
# trace, and prints the difference divided by the difference of the requests: the cost of one
# request (a get, and on a miss a set) without the process's start, the trace's loading and the
# cache's opening, which the two runs share. The environment passes through (CACHE_COHERENCE=false,
# say); L2 gets a segment of its own, removed at the end. The capacity is 100000 entries.
#
# Output: one line, "TIERING BUILD_DIR trace=... Ir/op=... (N: Ir, N/5: Ir)".
set -euo pipefail
B=$1 T=$2 TRACE=$3 N=${4:-1000000}
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ir REQUESTS: the instructions of one replay of REQUESTS requests
ir() {
    local name=cg-$$-$RANDOM
    env CACHE_TIERING="$T" CACHE_SHARED_NAME="$name" CACHE_SHARED_MAX_ENTRIES=200000 CACHE_SHARED_MAX_BYTES=64MiB \
        valgrind --tool=callgrind --callgrind-out-file="$tmp/cg" "$B/tiercache" bench --trace "$TRACE" \
        --capacity 100000 --requests "$1" >/dev/null 2>"$tmp/log"
    "$B/tiercache" shared destroy "$name" >/dev/null 2>&1 || true
    grep -o 'Collected : [0-9]*' "$tmp/log" | grep -o '[0-9]*'
}

small=$((N / 5))
a=$(ir "$N")
b=$(ir "$small")
echo "$T $B trace=$(basename "$TRACE") Ir/op=$(echo "scale=1; ($a - $b) / ($N - $small)" | bc) ($N: $a, $small: $b)"
