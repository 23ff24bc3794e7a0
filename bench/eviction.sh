#!/usr/bin/env bash
# eviction.sh: L1's hit ratio beside exact LRU, Caffeine 2.6.2 and Belady's optimal, on the
# real traces of ../shared/traces and the synthetic ones of ../shared/bench/peers.sh.
#
#   bench/eviction.sh table          the table of docs/EVICTION.md (markdown, one run), then the
#                                    summary against issue 10's target
#   bench/eviction.sh plots [DIR]    hit ratio against capacity, one PNG per real trace, in DIR
#                                    (default docs/eviction), with the data beside each plot
#   bench/eviction.sh redraw [DIR]   the plots again from the data in DIR (style only)
#   bench/eviction.sh windows        tiercache with the window fixed (CACHE_MEMORY_WINDOW=1, 10,
#                                    25, 50, 100) beside the adaptive one, on every case
#   bench/eviction.sh robust         the same comparison as `table` on workloads that are not
#                                    issue 10's cases: real traces run one after another (a change
#                                    of character part-way), synthetic traces of gentrace.c with
#                                    other parameters, a hot set that moves (traces built in
#                                    $PEERS_DIR/robust on first use)
#   bench/eviction.sh offtable [DIR] the plots' data (DIR, default docs/eviction) at the
#                                    capacities that are not issue 10's cases, as the same table
#
# Run from the repository root after `make` (or cmake --build build); TC_SHARED names the
# shared directory when it is not ../shared beside the repository. Each case replays the same
# trace file through: refsim lru and refsim opt (exact LRU, optimal), CaffeineBench (Caffeine
# 2.6.2, default settings, second of two passes), and `tiercache bench` (L1 alone, default
# settings: the adaptive window). The peers are the ones of ../shared/bench/peers.sh (set up on
# first use: Java and Caffeine from Debian); the plots need gnuplot, installed here if missing
# (Debian's gnuplot-nox). Hit ratios do not depend on timing: the machine's load changes nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${TC_SHARED:-$root/../shared} # the shared bench and traces (beside the repository)
peers="$shared/bench/peers.sh"
traces="$shared/traces"
export PEERS_DIR=${PEERS_DIR:-/tmp/tiercache-peers}
tc="$root/build/tiercache"
what=${1:-}

[ -x "$tc" ] || { echo "eviction.sh: $tc is missing: build first (make)" >&2; exit 2; }
[ -x "$PEERS_DIR/refsim" ] && [ -f "$PEERS_DIR/java/CaffeineBench.class" ] || "$peers" setup >&2

ratio() { sed -n 's/.*hit_ratio=\([0-9.]*\).*/\1/p'; }
lru() { "$PEERS_DIR/refsim" lru "$2" "$1" </dev/null | ratio; }
opt() { "$PEERS_DIR/refsim" opt "$2" "$1" </dev/null | ratio; }
caffeine() { java -Xmx8g -cp "/usr/share/java/caffeine.jar:$PEERS_DIR/java" CaffeineBench "$2" "$1" 1 </dev/null | ratio; }
tiercache() { env CACHE_TIERING=L1 "$tc" bench --trace "$1" --capacity "$2" </dev/null 2>/dev/null | ratio; }

# The cases of issue 10: every trace and capacity of ../shared/traces/README.md, and the
# synthetic zipf99, scan and loop traces at 10000 and 100000 entries.
cases() {
  local t
  for t in "lirs-gli 250 1000 2000" "lirs-multi2 500 2000" "lirs-multi3 400 1200 4000" \
           "lirs-sprite 100 500 1000" "lirs-loop 256 1000" "lirs-2_pools 1000" "lirs-ps 400" \
           "lirs-cs 300" "lirs-zigzag 1000" "arc-OLTP 250 1000 2000 5000 15000"; do
    set -- $t
    local name=$1; shift
    for c in "$@"; do echo "$traces/$name.u32 $c"; done
  done
  for t in zipf99 scan loop; do
    [ -f "$PEERS_DIR/$t.u32" ] || "$peers" trace "$t" >/dev/null
    for c in 10000 100000; do echo "$PEERS_DIR/$t.u32 $c"; done
  done
}

# The table of every case read from stdin ("FILE CAPACITY" per line, the trace named after
# FILE), then its summary against issue 10's target.
compare() {
  echo "# $(date -u +%FT%TZ), $(git -C "$root" rev-parse --short HEAD), $(nproc) CPUs"
  echo
  echo "| trace | capacity | LRU | Caffeine 2.6.2 | tiercache | optimal | tiercache - max(LRU, Caffeine) |"
  echo "|---|---|---|---|---|---|---|"
  local sum_ref=0 sum_tc=0 n=0 below=0 must=0 worst=1
  while read -r f c; do
    local l k t o
    l=$(lru "$f" "$c"); k=$(caffeine "$f" "$c"); t=$(tiercache "$f" "$c"); o=$(opt "$f" "$c")
    local line
    line=$(awk -v l="$l" -v k="$k" -v t="$t" -v o="$o" -v name="$(basename "$f" .u32)" -v c="$c" 'BEGIN {
      r = l > k ? l : k; d = t - r
      printf "| %s | %s | %.4f | %.4f | %s%.4f%s | %.4f | %+.4f |\n", name, c, l, k, (d >= 0 ? "**" : ""), t, (d >= 0 ? "**" : ""), o, d }')
    echo "$line"
    read -r sum_ref sum_tc n below must worst < <(awk -v l="$l" -v k="$k" -v t="$t" -v sr="$sum_ref" -v st="$sum_tc" \
      -v n="$n" -v b="$below" -v m="$must" -v w="$worst" 'BEGIN {
      r = l > k ? l : k; d = t - r
      printf "%.6f %.6f %d %d %d %.4f\n", sr + r, st + t, n + 1, b + (d < 0), m + (d < -0.03), (d < w ? d : w) }')
  done
  echo
  awk -v sr="$sum_ref" -v st="$sum_tc" -v n="$n" -v b="$below" -v m="$must" -v w="$worst" 'BEGIN {
    printf "%d cases. Mean of the references (max of LRU and Caffeine) %.4f, mean of tiercache %.4f (%+.4f).\n", n, sr / n, st / n, (st - sr) / n
    printf "Below the reference: %d cases; more than 0.03 below: %d; worst %+.4f.\n", b, m, w
    printf "Must (no case below -0.03, mean at least -0.005): %s. Stretch (every case at or above): %s.\n",
      (m == 0 && (st - sr) / n >= -0.005) ? "met" : "NOT met", b == 0 ? "met" : "not met"
  }'
}

# Capacities of each real trace's plot: from a few percent of its keys to about all of them.
plot_caps() {
  case "$1" in
    lirs-gli) echo 125 250 500 750 1000 1250 1500 1750 2000 2500 ;;
    lirs-multi2) echo 250 500 1000 1500 2000 2500 3000 4000 5000 ;;
    lirs-multi3) echo 200 400 800 1200 1600 2000 3000 4000 5000 6000 ;;
    lirs-sprite) echo 50 100 200 300 500 700 1000 1500 2000 ;;
    lirs-loop) echo 64 128 256 384 512 640 768 896 1000 1011 ;;
    lirs-2_pools) echo 250 500 750 1000 1500 2000 3000 4000 ;;
    lirs-ps) echo 100 200 400 600 800 1000 1500 2000 ;;
    lirs-cs) echo 100 200 300 400 600 800 1000 1200 ;;
    lirs-zigzag) echo 250 500 750 1000 1250 1500 1750 2000 ;;
    arc-OLTP) echo 250 500 1000 2000 5000 10000 15000 25000 50000 ;;
  esac
}

# Draws DIR/NAME.png from DIR/NAME.dat (capacity LRU Caffeine tiercache optimal per line).
draw() {
  local dir=$1 name=$2 logx=""
  [ "$name" = arc-OLTP ] && logx="set logscale x"
  gnuplot <<EOF
set terminal pngcairo size 720,480 font "sans,10"
set output "$dir/$name.png"
set title "$name: hit ratio against capacity (entries)"
set xlabel "capacity (entries)"
set ylabel "hit ratio"
set yrange [0:*]
set key right bottom opaque box
set grid
$logx
plot "$dir/$name.dat" using 1:5 with linespoints dashtype 2 pointtype 1 title "optimal (Belady)", \\
     "$dir/$name.dat" using 1:4 with linespoints linewidth 2 pointtype 7 title "tiercache (adaptive window)", \\
     "$dir/$name.dat" using 1:3 with linespoints pointtype 5 title "Caffeine 2.6.2", \\
     "$dir/$name.dat" using 1:2 with linespoints pointtype 9 title "exact LRU"
EOF
  echo "$dir/$name.png"
}

REAL="lirs-gli lirs-multi2 lirs-multi3 lirs-sprite lirs-loop lirs-2_pools lirs-ps lirs-cs lirs-zigzag arc-OLTP"

plots() {
  local dir=${1:-$root/docs/eviction} name
  mkdir -p "$dir"
  command -v gnuplot >/dev/null || "$root/tools/install-deps.sh" gnuplot-nox
  for name in $REAL; do
    local f="$traces/$name.u32" dat="$dir/$name.dat"
    echo "# capacity LRU Caffeine-2.6.2 tiercache optimal ($name, $(git -C "$root" rev-parse --short HEAD))" > "$dat"
    for c in $(plot_caps "$name"); do
      echo "$c $(lru "$f" "$c") $(caffeine "$f" "$c") $(tiercache "$f" "$c") $(opt "$f" "$c")" >> "$dat"
    done
    draw "$dir" "$name"
  done
}

# Redraws the plots from the data a previous `plots` left in DIR (a change of style only).
redraw() {
  local dir=${1:-$root/docs/eviction} name
  command -v gnuplot >/dev/null || "$root/tools/install-deps.sh" gnuplot-nox
  for name in $REAL; do draw "$dir" "$name"; done
}

# Writes to stdout the traces named as arguments one after another, each one's key ids moved
# above the previous ones' (disjoint keys: a new workload replaces the old one). Perl's
# pack/unpack reads the little-endian uint32 ids.
concat() {
  perl -e 'binmode STDOUT; my $off = 0;
    for my $f (@ARGV) {
      open(my $in, "<:raw", $f) or die "$f: $!"; local $/; my @a = unpack("V*", <$in>);
      my $max = 0; for (@a) { $max = $_ if $_ > $max }
      print pack("V*", map { $_ + $off } @a); $off += $max + 1;
    }' "$@"
}

# The workloads of `robust`, built on first use in $PEERS_DIR/robust. None is a case of
# issue 10 or was used to design the policy.
robust_cases() {
  local d="$PEERS_DIR/robust" g="$PEERS_DIR/gentrace" r="$traces"
  mkdir -p "$d"
  [ -x "$g" ] || "$peers" setup >&2
  build() { local out="$d/$1.u32"; shift; if [ ! -s "$out" ]; then "$@" > "$out.tmp"; mv "$out.tmp" "$out"; fi; }
  shift3() { "$g" zipf 100000 0.9 700000 21; "$g" zipf 100000 0.9 700000 22; "$g" zipf 100000 0.9 700000 23; }
  back() { concat "$d/zipf08.u32" "$d/loop30000.u32"; cat "$d/zipf08.u32"; }
  # real traces run one after another: recency-heavy then looping, and back, and other pairs
  build sprite+loop concat "$r/lirs-sprite.u32" "$r/lirs-loop.u32"
  build loop+sprite concat "$r/lirs-loop.u32" "$r/lirs-sprite.u32"
  build sprite+loop+sprite concat "$r/lirs-sprite.u32" "$r/lirs-loop.u32" "$r/lirs-sprite.u32"
  build zigzag+multi2 concat "$r/lirs-zigzag.u32" "$r/lirs-multi2.u32"
  build 2_pools+zigzag concat "$r/lirs-2_pools.u32" "$r/lirs-zigzag.u32"
  build multi3+sprite concat "$r/lirs-multi3.u32" "$r/lirs-sprite.u32"
  build OLTP+loop concat "$r/arc-OLTP.u32" "$r/lirs-loop.u32"
  build gli+cs+ps concat "$r/lirs-gli.u32" "$r/lirs-cs.u32" "$r/lirs-ps.u32"
  # synthetic traces of gentrace.c with other parameters (2,000,000 requests each)
  build zipf06 "$g" zipf 1000000 0.6 2000000 11
  build zipf08 "$g" zipf 1000000 0.8 2000000 12
  build zipf12 "$g" zipf 1000000 1.2 2000000 13
  build scan08 "$g" scan 1000000 0.8 2000000 14
  build loop10500 "$g" loop 10500 2000000
  build loop30000 "$g" loop 30000 2000000
  # a hot set that moves: Zipf over the same 100,000 keys, popularity permuted anew twice
  build zipf-shift shift3
  # frequency, then a loop larger than the cache (new keys), then the first Zipf's keys again
  build zipf+loop+zipf back
  local t c
  for t in "sprite+loop 500 1000" "loop+sprite 500 1000" "sprite+loop+sprite 1000" "zigzag+multi2 1000" \
           "2_pools+zigzag 1000" "multi3+sprite 1000 3000" "OLTP+loop 1000 5000" "gli+cs+ps 500" \
           "zipf06 10000" "zipf08 10000 100000" "zipf12 1000" "scan08 10000" "loop10500 10000" \
           "loop30000 10000" "zipf-shift 5000" "zipf+loop+zipf 10000"; do
    set -- $t
    local name=$1; shift
    for c in "$@"; do echo "$d/$name.u32 $c"; done
  done
}

# The plots' data at the capacities that are not cases of issue 10, as the table of compare.
offtable() {
  local dir=${1:-$root/docs/eviction} name
  echo "# from $dir/*.dat"
  echo
  echo "| trace | capacity | LRU | Caffeine 2.6.2 | tiercache | optimal | tiercache - max(LRU, Caffeine) |"
  echo "|---|---|---|---|---|---|---|"
  for name in $REAL; do
    local table_caps
    table_caps=" $(cases | awk -v n="$traces/$name.u32" '$1 == n { printf "%s ", $2 }')"
    grep -v '^#' "$dir/$name.dat" | while read -r c l k t o; do
      case "$table_caps" in *" $c "*) continue ;; esac
      echo "$name $c $l $k $t $o"
    done
  done | awk '{
    r = $3 > $4 ? $3 : $4; d = $5 - r; n++; sr += r; st += $5; b += d < 0; m += d < -0.03; if (n == 1 || d < w) w = d
    printf "| %s | %s | %.4f | %.4f | %s%.4f%s | %.4f | %+.4f |\n", $1, $2, $3, $4, (d >= 0 ? "**" : ""), $5, (d >= 0 ? "**" : ""), $6, d }
    END { printf "\n%d cases. Mean of the references %.4f, mean of tiercache %.4f (%+.4f).\n", n, sr / n, st / n, (st - sr) / n
          printf "Below the reference: %d cases; more than 0.03 below: %d; worst %+.4f.\n", b, m, w }'
}

windows() {
  echo "| trace | capacity | 1% | 10% | 25% | 50% | 100% (15/16) | adaptive |"
  echo "|---|---|---|---|---|---|---|---|"
  while read -r f c; do
    local row="| $(basename "$f" .u32) | $c |" w
    for w in 1 10 25 50 100; do row="$row $(CACHE_MEMORY_WINDOW=$w tiercache "$f" "$c") |"; done
    echo "$row $(tiercache "$f" "$c") |"
  done < <(cases)
}

case "$what" in
  table) cases | compare ;;
  robust) robust_cases | compare ;;
  offtable) shift; offtable "$@" ;;
  concat-of) shift; concat "$@" ;;
  windows) windows ;;
  plots) shift; plots "$@" ;;
  redraw) shift; redraw "$@" ;;
  *) sed -n '2,26p' "$0"; exit 2 ;;
esac
