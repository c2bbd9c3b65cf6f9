"""Machine-wide probes: without -p or -c, a probe on a file runs in every process that maps it,
the ones already running and the ones started later from elsewhere (not dprobe's children), each
counted with its own pid; processes dprobe may not trace are skipped with a note; every process
keeps its behaviour and gets its original code back."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

from conftest import assert_text_matches_file, dprobe_path, seize, target, tracer_pid  # noqa: F401


def count_lines(text: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(@\S*): (\d+)$", text, re.M)}


def start_machine_wide(spawn, script: str):
    dprobe = spawn([dprobe_path(), "-e", script], name="dprobe")
    dprobe.wait_for_line(r"Attaching \d+ probes?\.\.\.", timeout=20)
    return dprobe


def stop(dprobe) -> None:
    dprobe.signal(signal.SIGINT)
    assert dprobe.wait(timeout=30) == 0, dprobe.describe()


def test_twenty_workers_started_later_count_every_call(spawn):
    """20 `worker` processes started independently after dprobe, calling work() 1000 times at
    once: each is held in execve (fanotify) and armed before its first instruction, so every
    call counts: 1000 per pid, 20 pids."""
    worker = target("worker")
    dprobe = start_machine_wide(spawn, f"uprobe:{worker}:work {{ @[pid] = count(); }}")
    procs = [subprocess.Popen([worker, "1000"], stdout=subprocess.PIPE, text=True)
             for _ in range(20)]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert outputs == ["worker: 1000 calls, sum 1499500\n"] * 20
    time.sleep(0.2)
    stop(dprobe)
    assert count_lines(dprobe.stdout) == {f"@[{p.pid}]": 1000 for p in procs}, dprobe.describe()
    assert dprobe.stderr == "", dprobe.describe()


def test_running_processes_are_probed_and_left_intact(spawn):
    """Two servers running before dprobe starts (4 threads each) are both probed, and both get
    the file's code back and no tracer once dprobe stops; a third program that does not map the
    file is never touched."""
    server = target("server")
    servers = [spawn([server, "30"], name=f"server-{i}") for i in range(2)]
    other = spawn([target("loop"), "100000000"], name="loop")
    for s in servers:
        s.wait_for_line("tick 1", timeout=10)
    dprobe = start_machine_wide(spawn, f"uprobe:{server}:work {{ @[pid] = count(); }}")
    time.sleep(1.0)
    assert tracer_pid(other.pid) == 0
    stop(dprobe)
    counts = count_lines(dprobe.stdout)
    assert set(counts) == {f"@[{s.pid}]" for s in servers}, dprobe.describe()
    assert all(v > 100 for v in counts.values()), dprobe.describe()
    for s in servers:
        assert s.alive(), s.describe()
        assert tracer_pid(s.pid) == 0
        assert_text_matches_file(s.pid, server)


def test_a_process_that_execs_into_the_file_is_probed(spawn):
    """A shell that later execs `worker`: the pid is the same, its image changes, and dprobe
    probes the new image."""
    worker = target("worker")
    dprobe = start_machine_wide(spawn, f"uprobe:{worker}:work {{ @c = count(); }}")
    shell = subprocess.run(["/bin/sh", "-c", f"sleep 0.2; exec {worker} 500"],
                           capture_output=True, text=True, timeout=60)
    assert shell.returncode == 0 and shell.stdout == "worker: 500 calls, sum 374750\n", shell
    stop(dprobe)
    assert count_lines(dprobe.stdout) == {"@c": 500}, dprobe.describe()


def test_exit_in_any_process_ends_the_run(spawn):
    worker = target("worker")
    dprobe = start_machine_wide(spawn, f"uprobe:{worker}:work /arg0 == 10/ {{ @hit = count(); "
                                       "exit(); }")
    proc = subprocess.run([worker, "100", "300"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc
    assert dprobe.wait(timeout=30) == 0, dprobe.describe()
    assert count_lines(dprobe.stdout) == {"@hit": 1}, dprobe.describe()


def test_a_process_another_tracer_holds_is_skipped_with_a_note(spawn, seize):
    server = target("server")
    held, free = (spawn([server, "30"], name=f"server-{i}") for i in range(2))
    for s in (held, free):
        s.wait_for_line("tick 1", timeout=10)
    seize(held.pid)
    dprobe = start_machine_wide(spawn, f"uprobe:{server}:work {{ @[pid] = count(); }}")
    time.sleep(1.0)
    stop(dprobe)
    assert list(count_lines(dprobe.stdout)) == [f"@[{free.pid}]"], dprobe.describe()
    assert re.fullmatch(rf"dprobe: process {held.pid} not probed: .*\n", dprobe.stderr), \
        dprobe.describe()
