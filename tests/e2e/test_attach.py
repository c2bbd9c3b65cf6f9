"""Attaching to a running process with -p, leaving it, and the process living on unharmed."""

from __future__ import annotations

import re
import signal
import time

import pytest

from conftest import (assert_text_matches_file, assert_untraced, dprobe_path, target,
                      thread_ids)

COUNT_OUTPUT = re.compile(r"Attaching 1 probe\.\.\.\n\n\n@calls: (\d+)\n")


def start_server(spawn, seconds: float = 30.0, path=None):
    server = spawn([path or target("server"), f"{seconds}"], name="server")
    server.wait_for_line("server: ready", timeout=10)
    server.wait_for_line("tick 1", timeout=10)
    return server


def wait_more_ticks(server, count: int = 3) -> None:
    """The server is still alive and printing: `count` new ticks after this moment."""
    last = last_tick(server)
    server.wait_for_line(f"tick {last + count}", timeout=10 + count)


def last_tick(server) -> int:
    ticks = [int(line[5:]) for line in server.stdout_lines() if line.startswith("tick ")]
    return ticks[-1] if ticks else 0


def assert_server_output_sane(server) -> None:
    """ready, then tick 1..K without gaps or repeats, then exiting."""
    lines = server.stdout_lines()
    assert lines[0] == "server: ready", server.describe()
    assert lines[-1] == "server: exiting", server.describe()
    ticks = lines[1:-1]
    assert ticks == [f"tick {k}" for k in range(1, len(ticks) + 1)], server.describe()
    assert server.stderr == "", server.describe()


def stop_server(server) -> None:
    server.signal(signal.SIGTERM)
    assert server.wait(timeout=10) == 0, server.describe()
    assert_server_output_sane(server)


def count_script(binary) -> str:
    return f"uprobe:{binary}:work {{ @calls = count(); }}"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_attach_count_then_signal(spawn, sig):
    """-p on a running server, count for about a second, signal dprobe: it prints the count and
    exits 0; the server keeps ticking with every original code byte back and exits normally."""
    server = start_server(spawn)
    dprobe = spawn([dprobe_path(), "-p", server.pid, "-e", count_script(target("server"))],
                   name="dprobe")
    dprobe.wait_for_line(r"Attaching 1 probe\.\.\.", timeout=20)
    time.sleep(1.0)
    assert server.alive(), server.describe()
    dprobe.signal(sig)
    assert dprobe.wait(timeout=20) == 0, dprobe.describe()
    match = COUNT_OUTPUT.fullmatch(dprobe.stdout)
    assert match, dprobe.describe()
    # Four workers call work() about every millisecond: far more than 100 calls in a second.
    assert int(match.group(1)) > 100, dprobe.describe()
    assert dprobe.stderr == "", dprobe.describe()

    assert server.alive(), server.describe()
    assert_untraced(server.pid)
    wait_more_ticks(server)
    assert_text_matches_file(server.pid, target("server"))
    stop_server(server)


def test_attach_output_file(spawn, tmp_path):
    """-p with -o: dprobe's output goes to the file and its stdout stays empty."""
    server = start_server(spawn)
    out = tmp_path / "out.txt"
    script = "BEGIN { printf(\"ready\\n\"); } " + count_script(target("server"))
    dprobe = spawn([dprobe_path(), "-o", out, "-p", server.pid, "-e", script], name="dprobe")
    deadline = time.monotonic() + 20
    while not (out.exists() and "ready\n" in out.read_text()):
        assert time.monotonic() < deadline, f"no 'ready' in {out}\n" + dprobe.describe()
        assert dprobe.alive(), dprobe.describe()
        time.sleep(0.05)
    time.sleep(0.5)
    dprobe.signal(signal.SIGINT)
    assert dprobe.wait(timeout=20) == 0, dprobe.describe()
    assert dprobe.stdout == "" and dprobe.stderr == "", dprobe.describe()
    text = out.read_text()
    assert re.fullmatch(r"Attaching 2 probes\.\.\.\nready\n\n\n@calls: [1-9]\d*\n", text), text
    wait_more_ticks(server)
    assert_text_matches_file(server.pid, target("server"))
    stop_server(server)


def test_attach_until_target_exits(spawn):
    """The attached process exits on its own: dprobe notices, runs END, prints the maps and exits
    0; the server's own exit status and output are unchanged."""
    server = start_server(spawn, seconds=3.0)
    script = count_script(target("server")) + " END { printf(\"end\\n\"); }"
    dprobe = spawn([dprobe_path(), "-p", server.pid, "-e", script], name="dprobe")
    assert server.wait(timeout=20) == 0, server.describe()
    assert dprobe.wait(timeout=20) == 0, dprobe.describe()
    assert re.fullmatch(r"Attaching 2 probes\.\.\.\nend\n\n\n@calls: [1-9]\d*\n",
                        dprobe.stdout), dprobe.describe()
    assert dprobe.stderr == "", dprobe.describe()
    assert_server_output_sane(server)
    assert last_tick(server) == 30, server.describe()


def test_attach_threads_exact_count(spawn):
    """-p on a process whose four threads have not started yet (it waits on stdin): once BEGIN
    has run (so every probe is armed) the threads run; exactly 4 x 5000 hits, the target exits 0
    with its normal line and dprobe exits when it does."""
    threads = spawn([target("threads"), "4", "5000", "--wait"], stdin=True, name="threads")
    threads.wait_for_line("threads: waiting", timeout=10)
    script = "BEGIN { printf(\"ready\\n\"); } " + count_script(target("threads"))
    dprobe = spawn([dprobe_path(), "-p", threads.pid, "-e", script], name="dprobe")
    dprobe.wait_for_line("ready", timeout=20)
    threads.write("go\n")
    assert threads.wait(timeout=120) == 0, threads.describe()
    assert threads.stdout == "threads: waiting\nthreads: 4 x 5000 calls, sum 149990000\n", \
        threads.describe()
    assert dprobe.wait(timeout=20) == 0, dprobe.describe()
    assert dprobe.stdout == "Attaching 2 probes...\nready\n\n\n@calls: 20000\n", dprobe.describe()
    assert dprobe.stderr == "", dprobe.describe()


def test_attach_pid_tid_comm(spawn):
    """pid, tid and comm seen by probes on the server's workers are the real ones."""
    server = start_server(spawn)
    workers = set(thread_ids(server.pid)) - {server.pid}
    assert len(workers) == 4
    script = (f"uprobe:{target('server')}:work /arg0 % 100 == 0/ "
              "{ printf(\"%d %d %s\\n\", pid, tid, comm); @[pid, comm] = count(); }")
    dprobe = spawn([dprobe_path(), "-p", server.pid, "-e", script], name="dprobe")
    dprobe.wait_for_line(r"\d+ \d+ server", timeout=20)
    time.sleep(0.5)
    dprobe.signal(signal.SIGINT)
    assert dprobe.wait(timeout=20) == 0, dprobe.describe()
    lines = dprobe.stdout.split("\n")
    assert lines[0] == "Attaching 1 probe...", dprobe.describe()
    events = [line for line in lines[1:] if re.fullmatch(r"\d+ \d+ \S+", line)]
    assert events, dprobe.describe()
    seen_tids = set()
    for event in events:
        pid, tid, comm = event.split()
        assert int(pid) == server.pid and comm == "server", dprobe.describe()
        assert int(tid) in workers, f"tid {tid} is not a worker of {server.pid}: {workers}"
        seen_tids.add(int(tid))
    tail = dprobe.stdout[dprobe.stdout.index("\n\n\n"):]
    assert re.fullmatch(rf"\n\n\n@\[{server.pid}, server\]: {len(events)}\n", tail), \
        dprobe.describe()
    wait_more_ticks(server)
    assert_text_matches_file(server.pid, target("server"))
    stop_server(server)


def test_attach_exit_builtin(spawn):
    """exit() in a probe ends dprobe by itself (exit 0, maps printed); the server lives on with
    its code restored. Threads already stopped at the probe when exit() ran may still be
    counted, at most one per worker."""
    server = start_server(spawn)
    script = f"uprobe:{target('server')}:work {{ @calls = count(); exit(); }}"
    dprobe = spawn([dprobe_path(), "-p", server.pid, "-e", script], name="dprobe")
    assert dprobe.wait(timeout=20) == 0, dprobe.describe()
    match = COUNT_OUTPUT.fullmatch(dprobe.stdout)
    assert match and 1 <= int(match.group(1)) <= 4, dprobe.describe()
    assert server.alive(), server.describe()
    assert_untraced(server.pid)
    wait_more_ticks(server)
    assert_text_matches_file(server.pid, target("server"))
    stop_server(server)


def test_attach_twice_in_a_row(spawn):
    """A second dprobe session on the same process works after the first one left (nothing
    left behind that makes the second refuse or double-count)."""
    server = start_server(spawn)
    for _ in range(2):
        dprobe = spawn([dprobe_path(), "-p", server.pid, "-e", count_script(target("server"))],
                       name="dprobe")
        dprobe.wait_for_line(r"Attaching 1 probe\.\.\.", timeout=20)
        time.sleep(0.5)
        dprobe.signal(signal.SIGINT)
        assert dprobe.wait(timeout=20) == 0, dprobe.describe()
        assert COUNT_OUTPUT.fullmatch(dprobe.stdout), dprobe.describe()
        assert_untraced(server.pid)
        assert_text_matches_file(server.pid, target("server"))
    wait_more_ticks(server)
    stop_server(server)


def test_command_multithreaded_runs_to_end(tmp_path):
    """-c on the multi-threaded server: dprobe exits when it does; the server's output passes
    through unchanged (ticks 1..10, then exiting)."""
    from conftest import run_dprobe
    out = tmp_path / "out.txt"
    result = run_dprobe(["-o", out, "-e", count_script(target("server")),
                         "-c", f"{target('server')} 1.0"], timeout=60)
    assert result.returncode == 0, result.describe()
    expected = "server: ready\n" + "".join(f"tick {k}\n" for k in range(1, 11)) + \
        "server: exiting\n"
    assert result.stdout == expected, result.describe()
    assert result.stderr == "", result.describe()
    assert COUNT_OUTPUT.fullmatch(out.read_text()), out.read_text()
