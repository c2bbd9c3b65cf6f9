#!/usr/bin/env bash
# Probe overhead of every dprobe mechanism against bpftrace's kernel uprobe, entry + return
# probe pairs against bpftrace's uprobe + uretprobe, and printf event throughput, all measured
# on bench_loop in one run.
#
#   bench/run_bench.sh [BUILD_DIR]        (default BUILD_DIR: <repo>/build; needs root)
#
# Environment (defaults in brackets; each measurement is the best of REPEAT runs [3]):
#   DPROBE [BUILD_DIR/tools/dprobe/dprobe]   BENCH_LOOP [BUILD_DIR/bench/bench_loop]
#   N_BASE [10000000]     unprobed calls
#   N_JUMP [10000000]     calls per thread under --mechanism jump (1 and 2 threads)
#   N_BOOST [200000]      calls under --mechanism int3-boost (a trap and a signal per hit)
#   N_PTRACE [20000]      calls under --mechanism int3-ptrace (two traps + syscalls per hit)
#   N_BPFTRACE [50000]    calls under bpftrace (kernel uprobe: ~20 us per hit on this VM)
#   N_PRINTF [10000000]   calls with printf("%d\n", arg0) under --mechanism jump
#   N_USTACK [200000]     calls with @[ustack] = count() under --mechanism jump (a stack walk
#                         per hit); bpftrace runs the same script for N_BPFTRACE calls
#
# bench_loop N [THREADS] times only its loops of N calls to bench_fn per thread and prints
# `ns_per_call X` (wall time / N). Every probed run uses `uprobe:BENCH_LOOP:bench_fn
# { @c = count(); }` and checks that the count equals THREADS * N, so a fast but wrong probe
# cannot win; ns added per hit = probed ns_per_call - unprobed ns_per_call with the same number
# of threads. The printf run writes every event to a file (-o) and reports events per second
# (delivered events / wall time of the whole dprobe run, draining included) and the events
# dprobe reports lost; delivered + lost must equal N.
# Not part of `make test`/ctest: timings on a shared 2-core machine are noisy.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
dprobe=${DPROBE:-$build/tools/dprobe/dprobe}
bench=${BENCH_LOOP:-$build/bench/bench_loop}
n_base=${N_BASE:-10000000}
n_jump=${N_JUMP:-10000000}
n_boost=${N_BOOST:-200000}
n_ptrace=${N_PTRACE:-20000}
n_bpftrace=${N_BPFTRACE:-50000}
n_printf=${N_PRINTF:-10000000}
n_ustack=${N_USTACK:-200000}
repeat=${REPEAT:-3}

die() { echo "run_bench.sh: $*" >&2; exit 1; }
[[ -x $bench ]] || die "bench_loop not found: $bench (cmake --build BUILD --target bench_loop)"
[[ -x $dprobe ]] || die "dprobe not found: $dprobe (set DPROBE or build the dprobe target)"
command -v bpftrace >/dev/null || die "bpftrace not installed"
[[ $(id -u) == 0 ]] || die "needs root (ptrace of the command, kernel uprobes for bpftrace)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
script="uprobe:$bench:bench_fn { @c = count(); }"

ns_of() {  # stdout of bench_loop -> its ns_per_call value
  sed -n 's/^ns_per_call \([0-9.]*\)$/\1/p' "$1"
}

best() {  # best (smallest) of the numbers on stdin
  sort -g | head -n1
}

check_count() {  # FILE N TOOL
  grep -qx "@c: $2" "$1" || die "$3 counted $(grep '^@c' "$1" || echo nothing), expected $2"
}

measure_base() {  # THREADS
  for _ in $(seq "$repeat"); do
    "$bench" "$n_base" "$1" > "$tmp/base.out" || die "bench_loop failed (exit $?)"
    ns_of "$tmp/base.out"
  done | best
}

measure_dprobe() {  # MECHANISM N THREADS [SCRIPT EXTRA_COUNT]
  local run_script=${4:-$script} extra=${5:-0}
  for _ in $(seq "$repeat"); do
    timeout 600 "$dprobe" --mechanism "$1" -o "$tmp/dprobe.maps" -e "$run_script" \
      -c "$bench $2 $3" > "$tmp/dprobe.out" 2> "$tmp/dprobe.err" ||
      die "dprobe --mechanism $1 failed (exit $?): $(cat "$tmp/dprobe.err")"
    check_count "$tmp/dprobe.maps" $(($2 * $3 + extra)) "dprobe --mechanism $1"
    ns_of "$tmp/dprobe.out"
  done | best
}

# @c also counted by a second program that does more than count (on main, one hit): the map is
# then kept in per-thread tables (kFastCount) instead of the probe's hit counter (kFastHitCount).
table_script="uprobe:$bench:bench_fn { @c = count(); } uprobe:$bench:main { @c = count(); @x = 1; }"

measure_bpftrace() {
  for _ in $(seq "$repeat"); do
    # bpftrace -o still prints two blank lines on stdout; ns_of ignores them.
    timeout 600 bpftrace -o "$tmp/bpftrace.maps" -e "$script" -c "$bench $n_bpftrace" \
      > "$tmp/bpftrace.out" 2> "$tmp/bpftrace.err" || die "bpftrace failed: $(cat "$tmp/bpftrace.err")"
    check_count "$tmp/bpftrace.maps" "$n_bpftrace" bpftrace
    ns_of "$tmp/bpftrace.out"
  done | best
}

# Entry + return probe pairs on bench_pair_fn (bench_loop N 1 pair): both count into @c, so
# the count must be 2N. Prints the best ns_per_call. TOOL: dprobe or bpftrace.
pair_script="uprobe:$bench:bench_pair_fn { @c = count(); } uretprobe:$bench:bench_pair_fn { @c = count(); }"
measure_pair() {  # TOOL N
  for _ in $(seq "$repeat"); do
    if [[ $1 == dprobe ]]; then
      timeout 600 "$dprobe" -o "$tmp/pair.maps" -e "$pair_script" -c "$bench $2 1 pair" \
        > "$tmp/pair.out" 2> "$tmp/pair.err" || die "dprobe pair run failed: $(cat "$tmp/pair.err")"
    else
      timeout 600 bpftrace -o "$tmp/pair.maps" -e "$pair_script" -c "$bench $2 1 pair" \
        > "$tmp/pair.out" 2> "$tmp/pair.err" || die "bpftrace pair run failed: $(cat "$tmp/pair.err")"
    fi
    check_count "$tmp/pair.maps" $((2 * $2)) "$1 (entry + return)"
    ns_of "$tmp/pair.out"
  done | best
}

measure_pair_base() {
  for _ in $(seq "$repeat"); do
    "$bench" "$n_base" 1 pair > "$tmp/base.out" || die "bench_loop pair failed (exit $?)"
    ns_of "$tmp/base.out"
  done | best
}

# @[ustack] = count() on bench_fn: one stack, so one entry whose count must be N.
ustack_script="uprobe:$bench:bench_fn { @[ustack] = count(); }"
measure_ustack() {  # TOOL N
  for _ in $(seq "$repeat"); do
    if [[ $1 == dprobe ]]; then
      timeout 600 "$dprobe" --mechanism jump -o "$tmp/ustack.maps" -e "$ustack_script" \
        -c "$bench $2" > "$tmp/ustack.out" 2> "$tmp/ustack.err" ||
        die "dprobe ustack run failed: $(cat "$tmp/ustack.err")"
    else
      timeout 600 bpftrace -o "$tmp/ustack.maps" -e "$ustack_script" -c "$bench $2" \
        > "$tmp/ustack.out" 2> "$tmp/ustack.err" || die "bpftrace ustack run failed: $(cat "$tmp/ustack.err")"
    fi
    grep -qx "\]: $2" "$tmp/ustack.maps" ||
      die "$1 counted stacks $(grep '^\]' "$tmp/ustack.maps" | tr '\n' ' '), expected one of $2"
    ns_of "$tmp/ustack.out"
  done | best
}

# One printf run (no repeat: it writes N lines). Prints "ns_per_call wall_s delivered lost".
measure_printf() {
  local start end delivered lost
  start=$(date +%s.%N)
  timeout 600 "$dprobe" --mechanism jump -o "$tmp/printf.txt" \
    -e "uprobe:$bench:bench_fn { printf(\"%d\\n\", arg0); }" -c "$bench $n_printf" \
    > "$tmp/printf.out" 2> "$tmp/printf.err" ||
    die "dprobe printf run failed (exit $?): $(cat "$tmp/printf.err")"
  end=$(date +%s.%N)
  # The file is "Attaching 1 probe...", one line per event, then two blank lines.
  delivered=$(grep -c '^[0-9]' "$tmp/printf.txt" || true)
  lost=$(sed -n 's/^dprobe: \([0-9]*\) printf events lost.*/\1/p' "$tmp/printf.err" |
    awk '{ s += $1 } END { print s + 0 }')
  if grep -v 'printf events lost' "$tmp/printf.err" | grep -q .; then
    die "dprobe printf run wrote to stderr: $(cat "$tmp/printf.err")"
  fi
  (( delivered + lost == n_printf )) ||
    die "printf run: $delivered events delivered + $lost reported lost != $n_printf"
  echo "$(ns_of "$tmp/printf.out") $(echo "$end - $start" | bc -l) $delivered $lost"
}

base1=$(measure_base 1)
base2=$(measure_base 2)
jump1=$(measure_dprobe jump "$n_jump" 1)
jump2=$(measure_dprobe jump "$n_jump" 2)
table1=$(measure_dprobe jump "$n_jump" 1 "$table_script" 1)
boost1=$(measure_dprobe int3-boost "$n_boost" 1)
ptrace1=$(measure_dprobe int3-ptrace "$n_ptrace" 1)
kernel1=$(measure_bpftrace)
pair_base=$(measure_pair_base)
pair_dprobe=$(measure_pair dprobe "$n_jump")
pair_kernel=$(measure_pair bpftrace "$n_bpftrace")
read -r printf_ns printf_wall printf_delivered printf_lost <<< "$(measure_printf)"
ustack_dprobe=$(measure_ustack dprobe "$n_ustack")
ustack_kernel=$(measure_ustack bpftrace "$n_bpftrace")

awk -v b1="$base1" -v b2="$base2" -v j1="$jump1" -v j2="$jump2" -v t1="$table1" -v bo="$boost1" \
    -v pt="$ptrace1" -v k="$kernel1" -v nb="$n_base" -v nj="$n_jump" -v nbo="$n_boost" \
    -v npt="$n_ptrace" -v nk="$n_bpftrace" -v r="$repeat" \
    -v pns="$printf_ns" -v pwall="$printf_wall" -v pdel="$printf_delivered" \
    -v plost="$printf_lost" -v np="$n_printf" \
    -v pb="$pair_base" -v pd="$pair_dprobe" -v pk="$pair_kernel" \
    -v ud="$ustack_dprobe" -v uk="$ustack_kernel" -v nu="$n_ustack" 'BEGIN {
  kadd = k - b1
  fmt = "%-31s %7s %11s %10s %15s %17s\n"
  printf fmt, "run", "threads", "calls/thr", "ns/call", "ns added/hit", "x kernel uprobe"
  row("unprobed", 1, nb, b1, "")
  row("unprobed", 2, nb, b2, "")
  row("dprobe --mechanism jump", 1, nj, j1, j1 - b1)
  row("dprobe --mechanism jump", 2, nj, j2, j2 - b2)
  row("jump, count in a map table", 1, nj, t1, t1 - b1)
  row("dprobe --mechanism int3-boost", 1, nbo, bo, bo - b1)
  row("dprobe --mechanism int3-ptrace", 1, npt, pt, pt - b1)
  row("bpftrace (kernel uprobe)", 1, nk, k, kadd)
  printf "(best of %d runs each; ns added/hit = probed - unprobed ns/call with the same threads)\n", r
  printf "\nentry + return probe pair, @c = count() in both, on bench_pair_fn (%.2f ns/call unprobed):\n", pb
  printf "  dprobe (jump on entry and on the ret): %.1f ns added per call (%d calls)\n", pd - pb, nj
  printf "  bpftrace uprobe + uretprobe:          %.1f ns added per call (%d calls)\n", pk - pb, nk
  printf "  dprobe / bpftrace: %.4f\n", (pd - pb) / (pk - pb)
  printf "\nprintf(\"%%d\\n\", arg0) on every call, --mechanism jump, -o FILE, %d calls:\n", np
  printf "  loop: %.2f ns/call (%.0f events/s produced)\n", pns, 1e9 / pns
  printf "  delivered %d events in %.2f s of dprobe run: %.0f events/s; lost %d\n",
         pdel, pwall, pdel / pwall, plost
  printf "\n@[ustack] = count() on bench_fn (a stack walk per hit):\n"
  printf "  dprobe --mechanism jump: %.1f ns added per call (%d calls)\n", ud - b1, nu
  printf "  bpftrace:                %.1f ns added per call (%d calls)\n", uk - b1, nk
  printf "  dprobe / bpftrace: %.4f\n", (ud - b1) / (uk - b1)
}
function row(name, threads, calls, ns, added) {
  if (added == "") {
    printf fmt, name, threads, calls, sprintf("%.2f", ns), "-", "-"
  } else {
    ratio = kadd > 0 ? sprintf("%.3f", added / kadd) : "n/a"
    printf fmt, name, threads, calls, sprintf("%.2f", ns), sprintf("%.1f", added), ratio
  }
}'
