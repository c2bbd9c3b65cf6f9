"""The in-target agent on live processes (-p): arming while threads hammer the probed function,
threads parked or spinning inside the bytes a jump replaces, many arm/disarm cycles on one
process, who stays ptrace-attached, and `kill -9` of dprobe while probes are armed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (Background, assert_text_matches_file, assert_untraced, dprobe_path,
                      run_dprobe, target, thread_ids, tracer_pid)
from test_attach import (assert_server_output_sane, last_tick, start_server, stop_server,
                         wait_more_ticks)

MAP_LINE = re.compile(r"@(\w*)(?:\[(.*)\])?: (-?\d+)")


def parse_maps(text: str) -> dict:
    """Map lines of dprobe's output: {name: value} for scalars, {(name, key): value} for keyed
    entries (keys as printed)."""
    maps = {}
    for line in text.splitlines():
        match = MAP_LINE.fullmatch(line)
        if match:
            name, key, value = match.groups()
            maps[name if key is None else (name, key)] = int(value)
    return maps


def armed_dprobe(spawn, pid: int, script: str, mechanism: str | None = None,
                 verbose: bool = False) -> Background:
    """Starts dprobe -p PID with `BEGIN { printf("armed\\n"); }` in front of `script` and waits
    until that line is printed (BEGIN runs once every probe is armed)."""
    args = [dprobe_path(), "-p", pid]
    if verbose:
        args.append("-v")
    if mechanism:
        args += ["--mechanism", mechanism]
    args += ["-e", 'BEGIN { printf("armed\\n"); } ' + script]
    dprobe = spawn(args, name="dprobe")
    dprobe.wait_for_line(r"Attaching \d+ probes?\.\.\.", timeout=20)
    dprobe.wait_for_line("armed", timeout=20)
    return dprobe


def stop_dprobe(dprobe: Background) -> dict:
    dprobe.signal(signal.SIGINT)
    assert dprobe.wait(timeout=20) == 0, dprobe.describe()
    return parse_maps(dprobe.stdout)


# --------------------------------------------------------------------------------------------
# 3. Arming while four threads hammer the probed function


@pytest.mark.parametrize("mechanism", ["jump", "int3-boost"])
def test_arm_while_hammered(spawn, mechanism):
    """Four threads call work() back to back from the start. dprobe -p arms a probe on it; once
    BEGIN ran the test sends SIGUSR1 (the target counts, as C, the calls begun after it saw the
    signal), ~0.5 s later SIGUSR2 (the threads stop, the target prints C and its total T), then
    SIGINT to dprobe. No hit after arming may be lost: C <= count <= T. The target's results
    stay right, its code is restored and it exits 0."""
    binary = target("hammer")
    hammer = spawn([binary, "30"], stdin=True, name="hammer")
    hammer.wait_for_line("hammer: ready", timeout=10)
    time.sleep(0.2)  # the four threads are well into their loops
    dprobe = armed_dprobe(spawn, hammer.pid, f"uprobe:{binary}:work {{ @calls = count(); }}",
                          mechanism=mechanism)
    hammer.signal(signal.SIGUSR1)
    time.sleep(0.5)
    hammer.signal(signal.SIGUSR2)
    match = hammer.wait_for_line(
        r"hammer: (\d+) post-signal calls, (\d+) calls, (\d+) wrong results", timeout=20)
    post, total, wrong = (int(g) for g in match.groups())
    assert wrong == 0, hammer.describe()
    assert post > 0, "no call after SIGUSR1: the test proved nothing\n" + hammer.describe()
    maps = stop_dprobe(dprobe)
    assert dprobe.stdout.startswith("Attaching 2 probes...\narmed\n"), dprobe.describe()
    assert dprobe.stderr == "", dprobe.describe()
    assert "calls" in maps, dprobe.describe()
    count = maps["calls"]
    assert post <= count <= total, f"count {count} not in [C={post}, T={total}]"

    assert hammer.alive(), hammer.describe()
    assert_untraced(hammer.pid)
    assert_text_matches_file(hammer.pid, binary)
    hammer.write("bye\n")
    assert hammer.wait(timeout=10) == 0, hammer.describe()
    assert hammer.stderr == "", hammer.describe()
    assert hammer.stdout == f"hammer: ready\n{match.group(0)}\n", hammer.describe()


# --------------------------------------------------------------------------------------------
# 5. A thread parked in a syscall inside the replaced bytes, a thread spinning through them


SPIN_BUCKET = 1000000


def syscall_of(pid: int, tid: int) -> str:
    try:
        return Path(f"/proc/{pid}/task/{tid}/syscall").read_text().split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return "gone"


def wait_for_parked_thread(pid: int, timeout: float = 10.0) -> int:
    """The thread of pid blocked in pause() (syscall 34)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for tid in thread_ids(pid):
            if tid != pid and syscall_of(pid, tid) == "34":
                return tid
        time.sleep(0.01)
    pytest.fail(f"no thread of {pid} blocked in pause() within {timeout} s")


def check_spin_hits(maps: dict, last: int) -> None:
    """spin() enters its probe once per round with arg0 = round index, so the hits of one
    session are the rounds lo..last without a gap: count = last - lo + 1 and every bucket
    @b[arg0 / 10^6] holds exactly its share of that range."""
    count = maps.get("spin", 0)
    assert count > 0, f"the spinning thread never hit the probe: {maps}"
    bucket_total = sum(v for k, v in maps.items() if isinstance(k, tuple) and k[0] == "b")
    assert bucket_total == count, \
        f"@spin = {count} but the @b buckets add up to {bucket_total}: the printed maps hold " \
        f"part of a hit (a program's first statements but not its last, or the reverse): {maps}"
    lo = last - count + 1
    assert lo >= 0, f"{count} hits but the last round seen is {last}: {maps}"
    expected = {}
    for bucket in range(lo // SPIN_BUCKET, last // SPIN_BUCKET + 1):
        first = max(lo, bucket * SPIN_BUCKET)
        final = min(last, (bucket + 1) * SPIN_BUCKET - 1)
        expected[("b", str(bucket))] = final - first + 1
    actual = {k: v for k, v in maps.items() if isinstance(k, tuple) and k[0] == "b"}
    assert actual == expected, f"hits are not the contiguous rounds {lo}..{last}: {actual}"


def wait_until_parked_again(pid: int, tid: int, when: str, target_proc: Background) -> None:
    """The parked thread resumed its pause() (the restart) instead of running off into garbage."""
    deadline = time.monotonic() + 5
    while syscall_of(pid, tid) != "34":
        assert time.monotonic() < deadline, \
            f"thread {tid} is not back in pause() {when}: {syscall_of(pid, tid)}\n" + \
            target_proc.describe()
        time.sleep(0.01)


def test_jump_over_thread_parked_in_syscall(spawn):
    """--mechanism jump on park_syscall while a thread is blocked in its pause(): the tracer's
    stop leaves a syscall restart pending that moves rip back from +6 to the syscall at +4,
    inside the 6 replaced bytes. Three sessions are armed and disarmed while it stays parked
    (it must be back in pause() after each, no hit counted), a fourth stays until the target
    ends: park_syscall then counts exactly the calls made while armed (rounds - 1), every call
    returned -EINTR, and the target prints its normal result and exits 0."""
    binary = target("parked")
    rounds = 4
    parked = spawn([binary, str(rounds)], stdin=True, name="parked")
    parked.wait_for_line("parked: ready", timeout=10)
    parker = wait_for_parked_thread(parked.pid)
    script = f"uprobe:{binary}:park_syscall {{ @park = count(); }}"

    for session in range(3):
        dprobe = armed_dprobe(spawn, parked.pid, script, mechanism="jump", verbose=True)
        time.sleep(0.2)
        assert parked.alive(), parked.describe()
        wait_until_parked_again(parked.pid, parker, f"while armed (session {session})", parked)
        maps = stop_dprobe(dprobe)
        lines = dprobe.stderr.splitlines()  # the -v line only
        assert len(lines) == 1 and "mechanism jump (replaces 6 bytes" in lines[0], \
            dprobe.describe()
        # bpftrace prints a scalar count that was never hit as 0.
        assert maps == {"park": 0}, f"session {session}: {dprobe.describe()}"
        assert parked.alive(), parked.describe()
        assert_text_matches_file(parked.pid, binary)
        wait_until_parked_again(parked.pid, parker, f"after session {session}", parked)

    dprobe = armed_dprobe(spawn, parked.pid, script, mechanism="jump")
    wait_until_parked_again(parked.pid, parker, "while armed (last session)", parked)
    parked.write("go\n")
    assert parked.wait(timeout=20) == 0, parked.describe()
    assert re.fullmatch(rf"parked: ready\nparked: {rounds} pauses interrupted, \d+ spin rounds\n",
                        parked.stdout), parked.describe()
    assert parked.stderr == "", parked.describe()
    assert dprobe.wait(timeout=20) == 0, dprobe.describe()
    assert dprobe.stderr == "", dprobe.describe()
    # The first park_syscall call began before any session: only the other rounds - 1 count.
    assert parse_maps(dprobe.stdout) == {"park": rounds - 1}, dprobe.describe()


def test_jump_over_spinning_thread(spawn):
    """--mechanism jump on spin while a thread runs through its 7 replaced bytes all the time
    (a stop catches it at +4, inside them, about every other time). Three sessions are armed
    and disarmed while it spins, a fourth stays until the target ends. The thread must go on
    correctly (the target's final line and exit 0), and each session's maps must show every
    round while armed exactly once: round numbers lo..last without a gap, the same total in
    @spin and in the @b buckets, nothing of a half-run hit."""
    binary = target("parked")
    parked = spawn([binary, "1"], stdin=True, name="parked")
    parked.wait_for_line("parked: ready", timeout=10)
    script = (f"uprobe:{binary}:spin {{ @spin = count(); @b[arg0 / {SPIN_BUCKET}] = count(); "
              f"@last = arg0; }}")
    problems = []
    for session in range(3):
        dprobe = armed_dprobe(spawn, parked.pid, script, mechanism="jump", verbose=True)
        time.sleep(0.2)
        assert parked.alive(), parked.describe()
        maps = stop_dprobe(dprobe)
        lines = dprobe.stderr.splitlines()  # the -v line only
        assert len(lines) == 1 and "mechanism jump (replaces 7 bytes" in lines[0], \
            dprobe.describe()
        assert parked.alive(), parked.describe()
        assert_text_matches_file(parked.pid, binary)
        try:
            assert "last" in maps, dprobe.describe()
            check_spin_hits(maps, maps["last"])
        except AssertionError as error:
            problems.append(f"session {session}: {error}")

    dprobe = armed_dprobe(spawn, parked.pid, script, mechanism="jump")
    time.sleep(0.2)
    parked.write("go\n")
    assert parked.wait(timeout=20) == 0, parked.describe()
    match = re.fullmatch(r"parked: ready\nparked: 1 pauses interrupted, (\d+) spin rounds\n",
                         parked.stdout)
    assert match, parked.describe()
    assert parked.stderr == "", parked.describe()
    total_rounds = int(match.group(1))
    assert dprobe.wait(timeout=20) == 0, dprobe.describe()
    assert dprobe.stderr == "", dprobe.describe()
    maps = parse_maps(dprobe.stdout)
    try:
        # spin returns its last rdi: the rounds entered the probe with arg0 = 0 .. total - 1.
        assert maps.get("last") == total_rounds - 1, dprobe.describe()
        check_spin_hits(maps, total_rounds - 1)
    except AssertionError as error:
        problems.append(f"last session (until the target ended): {error}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------
# 4. Many arm/disarm cycles on one process


class TimedServer(Background):
    """A Background process that also notes when each stdout line arrived."""

    def __init__(self, args: list, name: str):
        self.arrivals: list[float] = []
        super().__init__(args, name=name)

    def _read(self, stream, sink: list[str]) -> None:
        for line in stream:
            with self._cond:
                if sink is self._out:
                    self.arrivals.append(time.monotonic())
                sink.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()


@pytest.fixture
def timed_server():
    started: list[TimedServer] = []

    def start(seconds: float) -> TimedServer:
        server = TimedServer([target("server"), f"{seconds}"], name="server")
        started.append(server)
        server.wait_for_line("server: ready", timeout=10)
        server.wait_for_line("tick 1", timeout=10)
        return server

    yield start
    for server in started:
        server.kill()


def tick_gaps(server: TimedServer) -> float:
    """Longest time between two consecutive tick lines."""
    with server._cond:
        times = [t for t, line in zip(server.arrivals, server._out) if line.startswith("tick ")]
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def mapping_count(pid: int) -> int:
    return len(Path(f"/proc/{pid}/maps").read_text().splitlines())


def region_bytes(pid: int) -> int:
    """Bytes allocated to the shared-memory files (memfd "dprobe-region") the process maps,
    counted once per file: st_blocks of the file behind /proc/PID/map_files (needs root)."""
    allocated = {}
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        if "dprobe" not in line or "/memfd:" not in line:
            continue
        st = os.stat(f"/proc/{pid}/map_files/{line.split()[0]}")
        allocated[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return sum(allocated.values())


# A session that leaves its shared region behind in the target would let the cycles below pin
# gigabytes of this machine's memory: stop (and fail) long before that.
REGION_GUARD = 2 << 30


def test_sessions_do_not_accumulate_target_memory(timed_server):
    """Four dprobe sessions one after the other on one server: shared memory a finished session
    leaves allocated in the target (its region files) must not grow with the number of
    sessions (what the first one leaves, plus 1 MiB at most, after each later one)."""
    server = timed_server(seconds=60.0)
    binary = target("server")
    args = ["-p", server.pid, "-e", f"uprobe:{binary}:work {{ @calls = count(); exit(); }}"]
    left = []
    for _ in range(4):
        result = run_dprobe(args, timeout=15)
        assert result.returncode == 0, result.describe()
        left.append(region_bytes(server.pid))
    assert all(after <= left[0] + (1 << 20) for after in left[1:]), \
        "shared memory left allocated in the target after each of 4 sessions (MiB): " + \
        ", ".join(f"{b / (1 << 20):.1f}" for b in left)
    wait_more_ticks(server)
    stop_server(server)


# 200 cycles with the default mechanism (jump: ~0.15 s each here); int3-boost detaches and
# re-attaches in every cycle (~0.25 s each), so it runs 50.
@pytest.mark.parametrize("mechanism,cycles", [(None, 200), ("int3-boost", 50)],
                         ids=["default-200", "int3-boost-50"])
def test_repeated_arm_disarm(timed_server, mechanism, cycles):
    """dprobe -p on one server, `exit()` in the probe, `cycles` times in a row: every session
    counts at least one hit and exits 0, the server never misses a tick (ticks 1..K in order, no
    gap over 2 s between ticks printed every 100 ms), is untraced with every code byte equal to
    the file at the end, and exits normally."""
    server = timed_server(seconds=300.0)
    binary = target("server")
    args = ["-p", server.pid]
    if mechanism:
        args += ["--mechanism", mechanism]
    args += ["-e", f"uprobe:{binary}:work {{ @calls = count(); exit(); }}"]
    mappings_before = mapping_count(server.pid)
    started = time.monotonic()
    slowest = 0.0
    for cycle in range(cycles):
        cycle_start = time.monotonic()
        result = run_dprobe(args, timeout=15)
        slowest = max(slowest, time.monotonic() - cycle_start)
        assert result.returncode == 0, f"cycle {cycle}\n" + result.describe()
        assert re.fullmatch(r"Attaching 1 probe\.\.\.\n\n\n@calls: [1-9]\d*\n", result.stdout), \
            f"cycle {cycle}\n" + result.describe()
        assert result.stderr == "", f"cycle {cycle}\n" + result.describe()
        assert server.alive(), f"cycle {cycle}\n" + server.describe()
        left = region_bytes(server.pid)
        assert left < REGION_GUARD, \
            f"stopped after {cycle + 1} sessions: they left {left >> 20} MiB of shared memory " \
            f"allocated in the target (see test_sessions_do_not_accumulate_target_memory)"
    elapsed = time.monotonic() - started
    mappings_after = mapping_count(server.pid)
    print(f"{cycles} cycles in {elapsed:.1f} s (slowest {slowest:.2f} s); longest gap between "
          f"ticks {tick_gaps(server):.3f} s; mappings {mappings_before} -> {mappings_after}")

    assert_untraced(server.pid)
    assert_text_matches_file(server.pid, binary)
    wait_more_ticks(server)
    assert tick_gaps(server) < 2.0, f"longest gap between ticks: {tick_gaps(server):.3f} s"
    stop_server(server)


# --------------------------------------------------------------------------------------------
# Who stays attached


@pytest.mark.parametrize("mechanism,stays_attached", [("jump", True), ("int3-boost", False)])
def test_attachment_while_armed(spawn, mechanism, stays_attached):
    """With only jump probes dprobe stays ptrace-attached to every thread while armed; with an
    int3-boost probe it detaches after arming (running free). Either way the hits are counted,
    and after SIGINT every thread is untraced and the code equals the file."""
    server = start_server(spawn)
    binary = target("server")
    dprobe = armed_dprobe(spawn, server.pid, f"uprobe:{binary}:work {{ @calls = count(); }}",
                          mechanism=mechanism)
    time.sleep(0.3)
    tracers = {tid: tracer_pid(tid) for tid in thread_ids(server.pid)}
    expected = dprobe.pid if stays_attached else 0
    assert all(t == expected for t in tracers.values()), \
        f"tracer pids {tracers}, expected {expected} for --mechanism {mechanism}"
    maps = stop_dprobe(dprobe)
    assert maps.get("calls", 0) > 100, dprobe.describe()
    assert_untraced(server.pid)
    assert_text_matches_file(server.pid, binary)
    wait_more_ticks(server)
    stop_server(server)


# --------------------------------------------------------------------------------------------
# 8. kill -9 of dprobe while probes are armed


KILL_SCRIPTS = {
    "count": "uprobe:{b}:work {{ @calls = count(); }}",
    # Nobody reads the ring buffer after the kill: it fills up and must never block the target.
    "printf": 'uprobe:{b}:work {{ printf("%d %d\\n", tid, arg0); }}',
}


@pytest.mark.parametrize("mechanism", ["jump", "int3-boost"])
@pytest.mark.parametrize("script", list(KILL_SCRIPTS))
def test_kill9_while_armed(spawn, mechanism, script):
    """SIGKILL to dprobe while probes are armed on a running server: the server keeps ticking,
    is left untraced, and ends at its time limit with exit 0 and its normal output (its probes
    may stay in place, harmless, with nobody reading their results)."""
    server = start_server(spawn, seconds=3.0)
    binary = target("server")
    dprobe = armed_dprobe(spawn, server.pid, KILL_SCRIPTS[script].format(b=binary),
                          mechanism=mechanism)
    time.sleep(0.3)
    dprobe.signal(signal.SIGKILL)
    dprobe.wait(timeout=10)
    assert server.alive(), server.describe()
    wait_more_ticks(server, 2)
    assert_untraced(server.pid)
    assert server.wait(timeout=20) == 0, server.describe()
    assert_server_output_sane(server)
    assert last_tick(server) == 30, server.describe()


def test_kill9_at_any_moment_once_armed(spawn):
    """SIGKILL to dprobe at 8 moments after its probes are armed (from right after the
    "Attaching" line to well into the run), on one server: the server survives every one of them,
    keeps ticking and exits normally. (Killing dprobe while it is still injecting the agent --
    in the middle of a remote system call -- can still kill the target: a known gap.)"""
    server = start_server(spawn, seconds=60.0)
    binary = target("server")
    script = f"uprobe:{binary}:work {{ @calls = count(); }}"
    for step in range(8):
        proc = subprocess.Popen([str(dprobe_path()), "-p", str(server.pid), "-e", script],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, text=True)
        line = proc.stdout.readline()
        assert line == "Attaching 1 probe...\n", f"step {step}: {line!r} {proc.stderr.read()}"
        time.sleep(step * 0.03)
        proc.kill()
        proc.wait(timeout=10)
        assert server.alive(), f"server died after dprobe was killed {step * 30} ms after arming\n" + \
            server.describe()
    time.sleep(0.2)
    for tid in thread_ids(server.pid):
        assert tracer_pid(tid) == 0, f"thread {tid} still traced"
    wait_more_ticks(server, 3)
    stop_server(server)
