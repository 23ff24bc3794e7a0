#!/usr/bin/env bash
# perf.sh: every figure of docs/PERFORMANCE.md, beside the peers, in one run on one machine.
#
#   bench/perf.sh [l1|l2|l3|coh|all]   (default all; run from the repository root after `make`)
#
# coh (issue 9): the L1L2 replay with coherence on and off, and with BASE_BUILD (a build directory
# of a commit before coherence, when set) beside the peers; the cost of writes (a trace of distinct
# keys: every request a miss and a set) on L1L2 and L1L2L3; the cross-host staleness over 10000
# writes (bench_coherence_lag). Instruction counts, which do not drift: bench/callgrind.sh.
#
# Uses ../shared/bench/peers.sh (sets the peers up on first use) and its trace files in
# $PEERS_DIR (default /tmp/tiercache-peers). The l3 part starts its own redis-server on a free
# 127.0.0.1 port and stops it at the end. Output: the raw lines of every tool, each preceded by
# the command that printed it ("$ ..."), to be copied into docs/PERFORMANCE.md. Timing is never
# asserted: these are measurements.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
peers="$root/../shared/bench/peers.sh"
export PEERS_DIR=${PEERS_DIR:-/tmp/tiercache-peers}
B="$root/build"
what=${1:-all}

run() { echo "\$ $*"; "$@"; echo; }

# start_redis: a redis-server of our own on a free 127.0.0.1 port (REDIS_HOST/REDIS_PORT exported),
# stopped at exit. Once per run.
rpid=
start_redis() {
  [ -n "$rpid" ] && return
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  dir=$(mktemp -d)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize no >"$dir/log" 2>&1 &
  rpid=$!
  trap 'kill $rpid 2>/dev/null; wait $rpid 2>/dev/null; rm -rf "$dir"' EXIT
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export REDIS_HOST=127.0.0.1 REDIS_PORT=$port
}

[ -x "$PEERS_DIR/refsim" ] || "$peers" setup
for t in zipf99 scan loop; do [ -f "$PEERS_DIR/$t.u32" ] || "$peers" trace "$t" >/dev/null; done
Z=$PEERS_DIR/zipf99.u32
echo "# $(date -u +%FT%TZ) $(uname -m) $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

if [ "$what" = l1 ] || [ "$what" = all ]; then
  echo "## L1 (issue 2)"
  for cap in 100000 10000; do
    for t in zipf99 scan loop; do
      run "$peers" l1 "$PEERS_DIR/$t.u32" "$cap"
      run env CACHE_TIERING=L1 "$B/tiercache" bench --trace "$PEERS_DIR/$t.u32" --capacity "$cap"
    done
  done
  echo "## L1, two threads"
  run "$peers" l1 "$Z" 100000 2
  run env CACHE_TIERING=L1 "$B/tiercache" bench --trace "$Z" --capacity 100000 --threads 1
  run env CACHE_TIERING=L1 "$B/tiercache" bench --trace "$Z" --capacity 100000 --threads 2
  echo "## L1 memory, and the orchestrator's cost over the tier called directly"
  run "$B/bench_memory" 1000000
  run "$B/bench_l1_overhead" "$Z" 100000 3
  run "$B/bench_l1_hot"
fi

if [ "$what" = l2 ] || [ "$what" = all ]; then
  echo "## L2 (issue 4)"
  run /tmp/tiercache-peers/refsim direct 100000 "$Z"
  run env CACHE_TIERING=L2 "$B/tiercache" bench --trace "$Z" --capacity 100000
  run "$B/bench_l2" "$Z" 100000 1 1
  run "$B/bench_l2" "$Z" 100000 2 1
  echo "## L1L2: a second process finds the first one's data in L2"
  name=perf-l1l2-$$
  export CACHE_SHARED_NAME=$name CACHE_SHARED_MAX_ENTRIES=1000000
  run env CACHE_TIERING=L1L2 "$B/tiercache" bench --trace "$Z" --capacity 100000 --requests 2000000 --json
  run env CACHE_TIERING=L1L2 "$B/tiercache" bench --trace "$Z" --capacity 100000 --requests 2000000 --no-clear --json
  "$B/tiercache" shared destroy "$name"
  unset CACHE_SHARED_NAME CACHE_SHARED_MAX_ENTRIES
fi

if [ "$what" = l3 ] || [ "$what" = all ]; then
  echo "## L3 (issue 3)"
  start_redis
  run "$peers" redis "$port"
  # the issue's reference for a 16-key multi-get: one client, pipeline 16
  run redis-benchmark -p "$port" -q --csv -t get -n 400000 -c 1 -P 16 -d 100
  run env REQUESTS=300000 "$peers" l1l3 "$Z" 10000 "$port"
  redis-cli -p "$port" flushall >/dev/null
  run env CACHE_TIERING=L1L3 "$B/tiercache" bench --trace "$Z" --capacity 10000 --requests 300000
  run env CACHE_TIERING=L3 "$B/bench_redis" 100000
fi
if [ "$what" = coh ] || [ "$what" = all ]; then
  echo "## Coherence (issue 9)"
  U=$PEERS_DIR/unique1m.u32   # 1M distinct keys: every request a miss, then a set
  [ -f "$U" ] || "$PEERS_DIR/gentrace" loop 1000000 1000000 >"$U"
  run "$peers" l1 "$Z" 100000
  name=perf-coh-$$
  for round in 1 2; do
    for coh in true false; do
      run env CACHE_TIERING=L1L2 CACHE_COHERENCE=$coh CACHE_SHARED_NAME=$name-$coh CACHE_SHARED_MAX_ENTRIES=200000 \
        CACHE_SHARED_MAX_BYTES=64MiB "$B/tiercache" bench --trace "$Z" --capacity 100000
      "$B/tiercache" shared destroy "$name-$coh" >/dev/null
    done
    if [ -n "${BASE_BUILD:-}" ]; then
      run env CACHE_TIERING=L1L2 CACHE_SHARED_NAME=$name-base CACHE_SHARED_MAX_ENTRIES=200000 \
        CACHE_SHARED_MAX_BYTES=64MiB "$BASE_BUILD/tiercache" bench --trace "$Z" --capacity 100000
      "$BASE_BUILD/tiercache" shared destroy "$name-base" >/dev/null
    fi
  done
  run "$B/bench_l1_hot"
  echo "## Coherence: writes"
  for coh in true false; do
    run env CACHE_TIERING=L1L2 CACHE_COHERENCE=$coh CACHE_SHARED_NAME=$name-w CACHE_SHARED_MAX_ENTRIES=200000 \
      CACHE_SHARED_MAX_BYTES=64MiB "$B/tiercache" bench --trace "$U" --capacity 100000
    "$B/tiercache" shared destroy "$name-w" >/dev/null
  done
  start_redis
  for coh in true false true false; do
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    run env CACHE_TIERING=L1L2L3 CACHE_COHERENCE=$coh CACHE_SHARED_NAME=$name-w3 CACHE_SHARED_MAX_ENTRIES=200000 \
      CACHE_SHARED_MAX_BYTES=64MiB "$B/tiercache" bench --trace "$U" --capacity 100000 --requests 100000
    "$B/tiercache" shared destroy "$name-w3" >/dev/null
  done
  echo "## Coherence: staleness across hosts"
  run "$B/bench_coherence_lag" 10000
fi
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
