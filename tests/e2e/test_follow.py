"""Probes that follow the program into fork children: the children's hits count with their own
pid, the session lasts until the last followed child (or grandchild) exits, children still
running when dprobe stops get their original code back. A process dprobe runs free of (int3-boost
only: no ptrace, so that no hit stops in it) and the children of a followed child are not traced:
their forks are followed through the kernel's fork notices (the process events connector)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import (assert_text_matches_file, dprobe_path, run, run_dprobe, target,
                      text_mismatches, tracer_pid)


def count_lines(text: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(@\S*): (\d+)$", text, re.M)}


def mechanism_args(mechanism: str | None) -> list[str]:
    return ["--mechanism", mechanism] if mechanism else []


@pytest.mark.parametrize("mechanism", [None, "int3-boost", "int3-ptrace"])
def test_hundred_children_from_four_threads_count_exactly_per_pid(tmp_path, mechanism):
    binary = target("forkmany")
    out = tmp_path / "out.txt"
    result = run_dprobe(mechanism_args(mechanism) + ["-o", out, "-e",
                         f"uprobe:{binary}:work {{ @c = count(); @p[pid] = count(); }}",
                         "-c", f"{binary} 4 100 1000"], timeout=120)
    assert result.returncode == 0, result.describe()
    assert result.stdout == "forkmany: 4 threads x 1000 calls, 100 of 100 children exited 0\n"
    text = out.read_text()
    assert "@c: 104000\n" in text, text
    per_pid = [int(v) for v in re.findall(r"^@p\[\d+\]: (\d+)$", text, re.M)]
    assert sorted(per_pid) == [1000] * 100 + [4000], text
    assert result.stderr == "", result.describe()


@pytest.mark.parametrize("mechanism", [None, "int3-boost", "int3-ptrace"])
def test_session_lasts_until_the_last_child_exits(tmp_path, mechanism):
    """The parent exits at once; its 10 children call work() 300 ms later. int3-boost: dprobe
    runs free of the parent and learns of the children from the fork notices alone."""
    binary = target("forkmany")
    out = tmp_path / "out.txt"
    result = run_dprobe(mechanism_args(mechanism) + ["-o", out, "-e", f"uprobe:{binary}:work {{ @c = count(); }}",
                         "-c", f"{binary} 2 10 1000 300"], timeout=60)
    assert result.returncode == 0, result.describe()
    assert result.stdout == "child: 1000 calls, sum ok\n" * 10, result.describe()
    assert count_lines(out.read_text()) == {"@c": 12000}, out.read_text()


def test_forker_matches_bpftrace_total_and_per_pid(tmp_path):
    binary = target("forker")
    out = tmp_path / "out.txt"
    result = run_dprobe(["-v", "-o", out, "-e", f"uprobe:{binary}:work {{ @[pid] = count(); }}",
                         "-c", f"{binary} 100"], timeout=60)
    assert result.returncode == 0, result.describe()
    assert "child exit 0" in result.stdout, result.describe()
    forked = re.search(r"^process (\d+) forked (\d+): its probes stay and count$", result.stderr,
                       re.M)
    assert forked, result.describe()
    parent, child = forked.groups()
    assert count_lines(out.read_text()) == {f"@[{child}]": 100, f"@[{parent}]": 200}


def test_breakpoint_probes_are_followed_by_a_session_of_the_childs_own(tmp_path):
    """int3-ptrace needs dprobe on every hit: the child, cleaned and parked at its birth, is
    taken by a session of its own (another tracer thread), which arms it again before it
    returns from fork. Its hits count under its own pid."""
    binary = target("forker")
    out = tmp_path / "out.txt"
    result = run_dprobe(["-v", "--mechanism", "int3-ptrace", "-o", out, "-e",
                         f"uprobe:{binary}:work {{ @[pid] = count(); }}", "-c", f"{binary} 100"],
                        timeout=60)
    assert result.returncode == 0, result.describe()
    assert "child exit 0" in result.stdout, result.describe()
    forked = re.search(r"^process (\d+) forked (\d+): its probes are armed again by a "
                       r"session of its own$", result.stderr, re.M)
    assert forked, result.describe()
    parent, child = forked.groups()
    assert count_lines(out.read_text()) == {f"@[{child}]": 100, f"@[{parent}]": 200}


@pytest.mark.parametrize("mechanism", ["jump", "int3-boost", "int3-ptrace"])
@pytest.mark.parametrize("linger", [False, True])
def test_grandchildren_count_and_extend_the_session(tmp_path, mechanism, linger):
    """Each of 8 children (forked from 4 threads) forks a grandchild that calls work() too. With
    linger, the parent exits at once and children and grandchildren call work() 300 ms later,
    each outliving its parent: the session lasts until the last grandchild is gone."""
    binary = target("forkmany")
    out = tmp_path / "out.txt"
    env = dict(os.environ, FORKMANY_GRANDCHILD="1")
    args = ["4", "8", "1000"] + (["300"] if linger else [])
    result = run([dprobe_path(), "-v", "--mechanism", mechanism, "-o", out, "-e",
                  f"uprobe:{binary}:work {{ @c = count(); @p[pid] = count(); }}",
                  "-c", " ".join([str(binary)] + args)], timeout=60, env=env)
    assert result.returncode == 0, result.describe()
    if linger:
        assert result.stdout == "child: 1000 calls, sum ok\n" * 16, result.describe()
    else:
        assert result.stdout == ("forkmany: 4 threads x 1000 calls, 8 of 8 children exited 0\n"), \
            result.describe()
    text = out.read_text()
    assert "@c: 20000\n" in text, text
    per_pid = [int(v) for v in re.findall(r"^@p\[\d+\]: (\d+)$", text, re.M)]
    assert sorted(per_pid) == [1000] * 16 + [4000], text
    forks = re.findall(r"^process (\d+) forked (\d+): its probes (?:stay and count|are armed "
                       r"again by a session of its own)$", result.stderr, re.M)
    assert len(forks) == 16 and len({child for _, child in forks}) == 16, result.describe()


@pytest.mark.parametrize("mechanism", ["jump", "int3-boost", "int3-ptrace"])
def test_children_alive_at_sigint_get_their_code_back(spawn, mechanism):
    binary = target("forkmany")
    bg = spawn([dprobe_path(), "-v", "--mechanism", mechanism, "-e", f"uprobe:{binary}:work {{ @c = count(); }}",
                "-c", f"{binary} 1 2 1000 5000"])
    deadline = time.monotonic() + 20
    children: list[int] = []
    while time.monotonic() < deadline and len(children) < 2:
        children = [int(c) for c in re.findall(r"forked (\d+):", bg.stderr)]
        time.sleep(0.05)
    assert len(children) == 2, bg.describe()
    time.sleep(0.5)  # the parent is gone by now; the children sleep until 5 s
    bg.signal(signal.SIGINT)
    # Not bg.wait(): it also waits for the end of stdout, which the children hold open.
    deadline = time.monotonic() + 20
    while bg.alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert bg.proc.poll() == 0, bg.describe()
    for child in children:
        assert os.path.exists(f"/proc/{child}"), f"child {child} gone early\n{bg.describe()}"
        assert_text_matches_file(child, binary)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{c}") for c in children):
        time.sleep(0.05)
    assert bg.stdout.count("child: 1000 calls, sum ok\n") == 2, bg.describe()


@pytest.mark.parametrize("mechanism", ["jump", "int3-boost"])
def test_eight_threads_started_after_arming_count_per_tid(spawn, mechanism):
    """-p on a process whose 8 threads start only after dprobe has armed (BEGIN ran): every
    thread's hits land under its own tid (the agent sets a thread up on its first hit)."""
    threads = spawn([target("threads"), "8", "20000", "--tids", "--wait"], stdin=True,
                    name="threads")
    threads.wait_for_line("threads: waiting", timeout=10)
    script = (f"BEGIN {{ printf(\"ready\\n\"); }} uprobe:{target('threads')}:work "
              "{ @[tid] = count(); }")
    dprobe = spawn([dprobe_path(), "--mechanism", mechanism, "-p", threads.pid, "-e", script],
                   name="dprobe")
    dprobe.wait_for_line("ready", timeout=20)
    threads.write("go\n")
    assert threads.wait(timeout=120) == 0, threads.describe()
    tids = [int(t) for t in re.findall(r"^tid (\d+)$", threads.stdout, re.M)]
    assert len(tids) == 8, threads.describe()
    assert dprobe.wait(timeout=30) == 0, dprobe.describe()
    assert count_lines(dprobe.stdout) == {f"@[{tid}]": 20000 for tid in tids}, dprobe.describe()


def test_exec_of_another_program_leaves_it_unprobed_with_a_note(tmp_path):
    binary = target("execself")
    loop = target("loop")
    out = tmp_path / "out.txt"
    env = dict(os.environ, EXECSELF_OTHER=str(loop))
    result = run([dprobe_path(), "-o", out, "-e", f"uprobe:{binary}:work {{ @c = count(); }}",
                  "-c", f"{binary} 100 1"], timeout=60, env=env)
    assert result.returncode == 0, result.describe()
    assert result.stdout == "execself: 100 calls, 1 execs to go\nloop: 10 calls, sum 145\n"
    assert re.fullmatch(r"dprobe: process \d+ now runs \S+/loop: no probes armed \(.*execself: "
                        r"not mapped in process \d+\)\n", result.stderr), result.describe()
    assert count_lines(out.read_text()) == {"@c": 100}


@pytest.mark.parametrize("threads", [0, 3])
def test_exec_while_running_free_is_armed_again(tmp_path, threads):
    """int3-boost: dprobe runs free of the process (no ptrace); a fanotify exec permission event
    on the probed file holds it in execve, where dprobe takes it (every thread: with threads,
    a worker thread execs) and arms the new image before it runs. Counts are exact."""
    binary = target("execself")
    out = tmp_path / "out.txt"
    args = f"{binary} 1000 2" + (f" {threads}" if threads else "")
    result = run_dprobe(["-v", "--mechanism", "int3-boost", "-o", out, "-e",
                         f"uprobe:{binary}:work {{ @c = count(); @p[pid] = count(); }}",
                         "-c", args], timeout=60)
    assert result.returncode == 0, result.describe()
    each = f"{threads} threads x 1000 calls" if threads else "1000 calls"
    assert result.stdout == "".join(f"execself: {each}, {k} execs to go\n"
                                    for k in (2, 1, 0)), result.describe()
    assert len(re.findall(r"^process \d+ called exec: probes armed again in \S+execself$",
                          result.stderr, re.M)) == 2, result.describe()
    counts = count_lines(out.read_text())
    total = 3 * 1000 * max(threads, 1)
    assert counts.pop("@c") == total and list(counts.values()) == [total], out.read_text()


def test_pid_filter_on_a_shared_library_touches_no_other_process(spawn):
    """-p on a probe in libc: only that process is patched and counted; another process running
    the same program (and so the same libc pages on disk) keeps the file's code and is never
    stopped, unlike kernel uprobes, which trap in every process and filter afterwards."""
    first = spawn([target("server"), "30"], name="server-1")
    second = spawn([target("server"), "30"], name="server-2")
    for server in (first, second):
        server.wait_for_line("tick 1", timeout=10)
    libc = os.path.realpath(next(line.split()[-1] for line in open(f"/proc/{first.pid}/maps")
                                 if "/libc.so" in line))
    dprobe = spawn([dprobe_path(), "-p", first.pid, "-e",
                    "uprobe:libc:clock_nanosleep { @[pid] = count(); } "
                    "interval:ms:500 { exit(); }"], name="dprobe")
    deadline = time.monotonic() + 10
    checks_while_armed = 0
    while dprobe.alive() and time.monotonic() < deadline:
        if not text_mismatches(first.pid, libc):  # not armed (yet, or any more)
            time.sleep(0.01)
            continue
        assert_text_matches_file(second.pid, libc)
        assert tracer_pid(second.pid) == 0
        checks_while_armed += 1
        time.sleep(0.05)
    assert dprobe.wait(timeout=20) == 0, dprobe.describe()
    assert checks_while_armed > 0, "never saw the first server armed"
    assert second.alive() and first.alive()
    counts = count_lines(dprobe.stdout)
    assert list(counts) == [f"@[{first.pid}]"] and counts[f"@[{first.pid}]"] > 10, \
        dprobe.describe()
    assert_text_matches_file(first.pid, libc)


def test_a_thread_blocking_sigtrap_gets_breakpoints_not_int3_boost(spawn):
    """The kernel kills a thread whose int3 raises a SIGTRAP it blocks. -p on a program that
    blocks SIGTRAP (started so) gets int3-ptrace where it would have had int3-boost, -v says
    why, and it runs and counts exactly."""
    binary = target("tiny")
    proc = subprocess.Popen([binary, "1000", "--wait"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK,
                                                                       {signal.SIGTRAP}))
    try:
        assert proc.stdout.readline() == "tiny: waiting\n"
        dprobe = spawn([dprobe_path(), "-v", "-p", proc.pid, "-e",
                        f"BEGIN {{ printf(\"ready\\n\"); }} uprobe:{binary}:tiny_fn "
                        "{ @c = count(); }"], name="dprobe")
        dprobe.wait_for_line("ready", timeout=20)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.read() == "tiny: 1000 calls, sum 2003000\n"
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
    assert dprobe.wait(timeout=30) == 0, dprobe.describe()
    assert re.search(r"mechanism int3-ptrace \(.*int3-boost refused: thread \d+ blocks SIGTRAP\)",
                     dprobe.stderr), dprobe.describe()
    assert count_lines(dprobe.stdout) == {"@c": 1000}, dprobe.describe()


@pytest.mark.parametrize("mechanism", ["jump", "int3-boost", "int3-ptrace"])
def test_vfork_exec_and_exit_from_a_signal_handler(tmp_path, mechanism):
    """vfork + exec in the probed process, and a fork child that a SIGUSR1 handler (which also
    calls the probed function) ends with _exit(7): nothing hangs, nothing crashes, the program
    sees what it sees unprobed."""
    binary = target("vforker")
    out = tmp_path / "out.txt"
    result = run_dprobe(["--mechanism", mechanism, "-o", out, "-e",
                         f"uprobe:{binary}:work {{ @c = count(); }}", "-c", f"{binary} 10"],
                        timeout=60)
    assert result.returncode == 0, result.describe()
    assert result.stdout == ("vforker: 10 of 10 vfork children exited 0, signalled child "
                             "exited 7\n"), result.describe()
    assert count_lines(out.read_text())["@c"] >= 10, out.read_text()
