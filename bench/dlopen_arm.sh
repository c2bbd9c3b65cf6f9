#!/usr/bin/env bash
# Deferred insertion and fork costs, in one run:
#
#   bench/dlopen_arm.sh [BUILD_DIR]        (default BUILD_DIR: <repo>/build)
#
# 1. dlopen -> armed. plugin_host (tests/targets) dlopen()s libplugin.so twice, timing each
#    dlopen and dlclose (PLUGIN_HOST_TIMES). Under dprobe with `uprobe:libplugin.so:plugin_entry`
#    the probes are armed at the loader's RT_CONSISTENT stop *inside* dlopen, before the library's
#    constructor runs: the time from dlopen returning to the probes being armed is therefore
#    negative by construction, and what the user pays is the extra time dlopen takes. Reported:
#    dlopen/dlclose ns unprobed vs under dprobe, dprobe's own "armed in N us" (-v), and the
#    count check (2K + 2: the constructor's calls are counted, so nothing ran before the probes
#    were armed).
# 2. fork cost. forkloop N fork()s and waits N children (each calls work() once); ns per
#    fork+wait unprobed, under dprobe with a jump probe on work (dprobe traces the process and
#    follows each child: a ptrace fork stop per fork), and under --mechanism int3-boost (dprobe
#    lets go of the process: no stop at all, the children inherit the int3 and the agent).
#
# Environment: DPROBE [BUILD_DIR/tools/dprobe/dprobe], TARGETS [BUILD_DIR/tests/targets],
#   K [20000] calls per load, N_FORK [2000] forks, REPEAT [5] (best of REPEAT for each number).
# Not part of ctest: timings on a shared machine are noisy.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
dprobe=${DPROBE:-$build/tools/dprobe/dprobe}
targets=${TARGETS:-$build/tests/targets}
k=${K:-20000}
n_fork=${N_FORK:-2000}
repeat=${REPEAT:-5}
host=$targets/plugin_host
lib=$targets/libplugin.so
forkloop=$targets/forkloop

die() { echo "dlopen_arm.sh: $*" >&2; exit 1; }
for f in "$dprobe" "$host" "$forkloop"; do [[ -x $f ]] || die "not built: $f"; done
[[ -f $lib ]] || die "not built: $lib"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

min() { sort -n | head -1; }
# field NAME LOAD FILE: value of NAME on the LOAD-th "dlopen_ns .. dlclose_ns .." line
field() { awk -v n="$1" -v load="$2" '$1 == "dlopen_ns" { ++i; if (i == load) for (j = 1; j < NF; j += 2) if ($j == n) print $(j + 1) }' "$3"; }

# --- 1. dlopen -> armed --------------------------------------------------------------------
: > "$tmp/plain"
: > "$tmp/probed"
: > "$tmp/armed"
for ((r = 0; r < repeat; ++r)); do
  PLUGIN_HOST_TIMES=1 "$host" "$lib" "$k" > "$tmp/out"
  for load in 1 2; do
    echo "$load $(field dlopen_ns $load "$tmp/out") $(field dlclose_ns $load "$tmp/out")" >> "$tmp/plain"
  done
  PLUGIN_HOST_TIMES=1 "$dprobe" -v -o "$tmp/maps" \
    -e "uprobe:$lib:plugin_entry { @c = count(); }" -c "$host $lib $k" > "$tmp/out" 2> "$tmp/err"
  count=$(sed -n 's/^@c: //p' "$tmp/maps")
  [[ $count == $((2 * k + 2)) ]] || die "count $count, expected $((2 * k + 2)) (2 loads x $k calls + 2 constructor calls)"
  for load in 1 2; do
    echo "$load $(field dlopen_ns $load "$tmp/out") $(field dlclose_ns $load "$tmp/out")" >> "$tmp/probed"
  done
  sed -n 's/.*its probes armed in \([0-9]*\) us.*/\1/p' "$tmp/err" | awk '{ print NR, $1 }' >> "$tmp/armed"
done

echo "== dlopen -> probes armed (plugin_host, $k calls per load, best of $repeat) =="
echo "probes armed before dlopen returned, before the constructor ran: yes (count $((2 * k + 2)) exact in every run)"
printf '%-6s %14s %14s %8s %14s %14s %8s %12s\n' load dlopen_plain dlopen_dprobe ratio \
  dlclose_plain dlclose_dprobe ratio armed_us
for load in 1 2; do
  po=$(awk -v l=$load '$1 == l { print $2 }' "$tmp/plain" | min)
  pc=$(awk -v l=$load '$1 == l { print $3 }' "$tmp/plain" | min)
  do_=$(awk -v l=$load '$1 == l { print $2 }' "$tmp/probed" | min)
  dc=$(awk -v l=$load '$1 == l { print $3 }' "$tmp/probed" | min)
  au=$(awk -v l=$load '$1 == l { print $2 }' "$tmp/armed" | min)
  printf '%-6s %12s ns %12s ns %7.1fx %12s ns %12s ns %7.1fx %12s\n' "$load" "$po" "$do_" \
    "$(echo "$do_ / $po" | bc -l)" "$pc" "$dc" "$(echo "$dc / $pc" | bc -l)" "$au"
done
echo "(dlopen_dprobe - dlopen_plain is the time the loader is held at its rendezvous stops: two"
echo " ptrace stops (RT_ADD, RT_CONSISTENT), each with an out-of-line step, and at the second the"
echo " maps re-read and the arming (the agent was placed when the probe started waiting; load 1"
echo " also maps trampoline pages near the library). dlclose: two stops, sites forgotten."
echo " armed_us: dprobe's own time from the consistent stop to every probe of the library armed.)"

# --- 2. fork cost --------------------------------------------------------------------------
fork_once() {  # mechanism or "plain" -> ns per fork+wait of one forkloop run
  if [[ $1 == plain ]]; then
    "$forkloop" "$n_fork" > "$tmp/fork"
  else
    "$dprobe" -o "$tmp/maps" --mechanism "$1" -e "uprobe:$forkloop:work { @c = count(); }" \
      -c "$forkloop $n_fork" > "$tmp/fork"
    count=$(sed -n 's/^@c: //p' "$tmp/maps")
    [[ $count == $((2 * n_fork)) ]] || die "fork under $1: count $count, expected $((2 * n_fork))"
  fi
  grep -q "sum ok" "$tmp/fork" || die "forkloop under $1: $(cat "$tmp/fork")"
  echo "$(sed -n 's/^ns_per_fork //p' "$tmp/fork") $(sed -n 's/^cpu_ns_per_fork //p' "$tmp/fork")"
}
# Interleaved, so that a change in the machine's load hits every configuration alike.
: > "$tmp/forks"
for ((r = 0; r < repeat; ++r)); do
  for m in plain jump int3-boost; do echo "$m $(fork_once $m)" >> "$tmp/forks"; done
done
best() { awk -v m="$1" -v f="$2" '$1 == m { print $f }' "$tmp/forks" | min; }
echo
echo "== fork cost (forkloop: $n_fork x fork+work+_exit+wait, best of $repeat, interleaved) =="
echo "(wall: ns per round; cpu: user+system ns of the program and its children per round --"
echo " dprobe's own time is not in it; on a busy machine wall time is mostly waiting for a CPU)"
printf '%-38s %12s %6s %12s %6s\n' configuration wall_ns ratio cpu_ns ratio
for m in plain jump int3-boost; do
  case $m in
    plain) label="unprobed" ;;
    jump) label="jump probe armed (traced, followed)" ;;
    int3-boost) label="int3-boost probe armed (running free)" ;;
  esac
  w=$(best $m 2); c=$(best $m 3)
  printf '%-38s %12s %5.1fx %12s %5.1fx\n' "$label" "$w" "$(echo "$w / $(best plain 2)" | bc -l)" \
    "$c" "$(echo "$c / $(best plain 3)" | bc -l)"
done
