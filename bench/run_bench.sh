#!/usr/bin/env bash
# Probe overhead: ns added per probe hit, dprobe vs bpftrace, measured on bench_loop.
#
#   bench/run_bench.sh [BUILD_DIR]        (default BUILD_DIR: <repo>/build; needs root)
#
# Environment: DPROBE (default BUILD_DIR/tools/dprobe/dprobe), BENCH_LOOP (default
# BUILD_DIR/bench/bench_loop), N_BASE (10000000), N_DPROBE (20000), N_BPFTRACE (50000),
# REPEAT (3: each measurement is the best of REPEAT runs).
#
# bench_loop N times only its loop of N calls to bench_fn and prints `ns_per_call X`. The same
# program `uprobe:BENCH_LOOP:bench_fn { @c = count(); }` runs under dprobe -c and bpftrace -c;
# ns added per hit = probed ns_per_call - unprobed ns_per_call. The ptrace mechanism costs
# several microseconds per hit (two traps and several system calls), so its N is small
# (N_DPROBE=20000); kernel uprobes are not cheap on this VM either (~20 us per hit measured
# here), hence N_BPFTRACE=50000. Both runs also check that the count equals N, so a fast but
# wrong probe cannot win.
# Not part of `make test`/ctest: timings on a shared 2-core machine are noisy.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
dprobe=${DPROBE:-$build/tools/dprobe/dprobe}
bench=${BENCH_LOOP:-$build/bench/bench_loop}
n_base=${N_BASE:-10000000}
n_dprobe=${N_DPROBE:-20000}
n_bpftrace=${N_BPFTRACE:-50000}
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

measure_base() {
  for _ in $(seq "$repeat"); do
    "$bench" "$n_base" > "$tmp/base.out"
    ns_of "$tmp/base.out"
  done | best
}

measure_dprobe() {
  for _ in $(seq "$repeat"); do
    timeout 300 "$dprobe" -o "$tmp/dprobe.maps" -e "$script" -c "$bench $n_dprobe" \
      > "$tmp/dprobe.out" || die "dprobe failed (exit $?)"
    check_count "$tmp/dprobe.maps" "$n_dprobe" dprobe
    ns_of "$tmp/dprobe.out"
  done | best
}

measure_bpftrace() {
  for _ in $(seq "$repeat"); do
    # bpftrace -o still prints two blank lines on stdout; ns_of ignores them.
    timeout 300 bpftrace -o "$tmp/bpftrace.maps" -e "$script" -c "$bench $n_bpftrace" \
      > "$tmp/bpftrace.out" 2> "$tmp/bpftrace.err" || die "bpftrace failed: $(cat "$tmp/bpftrace.err")"
    check_count "$tmp/bpftrace.maps" "$n_bpftrace" bpftrace
    ns_of "$tmp/bpftrace.out"
  done | best
}

base=$(measure_base)
with_dprobe=$(measure_dprobe)
with_bpftrace=$(measure_bpftrace)

awk -v base="$base" -v dp="$with_dprobe" -v bt="$with_bpftrace" \
    -v nb="$n_base" -v nd="$n_dprobe" -v nt="$n_bpftrace" -v r="$repeat" 'BEGIN {
  printf "%-28s %10s %14s %18s\n", "run", "calls", "ns/call", "ns added per hit"
  printf "%-28s %10d %14.2f %18s\n", "unprobed", nb, base, "-"
  printf "%-28s %10d %14.2f %18.1f\n", "dprobe (int3-ptrace)", nd, dp, dp - base
  printf "%-28s %10d %14.2f %18.1f\n", "bpftrace (kernel uprobe)", nt, bt, bt - base
  added_bt = bt - base
  if (added_bt > 0)
    printf "ratio dprobe/bpftrace (ns added per hit): %.2f\n", (dp - base) / added_bt
  else
    printf "ratio dprobe/bpftrace: n/a (bpftrace added no measurable time)\n"
  printf "(best of %d runs each; dprobe uses a small N because every ptrace hit costs microseconds)\n", r
}'
