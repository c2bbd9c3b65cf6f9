"""Deferred insertion: a probe on a library the process has not mapped yet is accepted with a
note and armed when the dynamic loader maps the library -- before any of its code runs, its
constructor included -- then forgotten at dlclose and armed again at the next dlopen. The
target, plugin_host, loads libplugin.so twice; plugin_entry() runs K times per load (per thread)
plus once from the library's constructor, so exact counts show that no call was missed."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from conftest import dprobe_path, run, target, text_mismatches, tracer_pid


def count_of(text: str, name: str = "@c") -> int | None:
    found = re.search(rf"^{re.escape(name)}: (\d+)$", text, re.M)
    return int(found.group(1)) if found else None


def probe(lib) -> str:
    return f"uprobe:{lib}:plugin_entry {{ @c = count(); }}"


def expected(k: int, threads: int = 0, loads_seen: int = 2, constructors: int = 2) -> int:
    return loads_seen * max(threads, 1) * k + constructors


NOTE = re.compile(r"^dprobe: (\S+) is not mapped in process (\d+) yet: its probes are armed "
                  r"when it is$", re.M)


@pytest.mark.parametrize("mechanism", [None, "jump", "int3-boost", "int3-ptrace"])
def test_command_loads_twice_counts_exactly(tmp_path, mechanism):
    host, lib = target("plugin_host"), target("libplugin.so")
    out = tmp_path / "out.txt"
    args = [dprobe_path(), "-o", out, "-e", probe(lib), "-c", f"{host} {lib} 1000"]
    if mechanism:
        args[1:1] = ["--mechanism", mechanism]
    result = run(args, timeout=60)
    assert result.returncode == 0, result.describe()
    assert result.stdout == ("plugin_host: load 1: 1 x 1000 calls, sum ok\n"
                             "plugin_host: load 2: 1 x 1000 calls, sum ok\n"), result.describe()
    note = NOTE.search(result.stderr)
    assert note and note.group(1) == str(lib), result.describe()
    assert count_of(out.read_text()) == expected(1000), out.read_text()


def test_command_with_threads_after_the_load(tmp_path):
    host, lib = target("plugin_host"), target("libplugin.so")
    out = tmp_path / "out.txt"
    result = run([dprobe_path(), "-o", out, "-e",
                  f"uprobe:{lib}:plugin_entry {{ @c = count(); @t[tid] = count(); }}",
                  "-c", f"{host} {lib} 5000 4"], timeout=60)
    assert result.returncode == 0, result.describe()
    assert result.stdout.count("4 x 5000 calls, sum ok") == 2, result.describe()
    text = out.read_text()
    assert count_of(text) == expected(5000, threads=4), text
    per_tid = sorted(int(v) for v in re.findall(r"^@t\[\d+\]: (\d+)$", text, re.M))
    # 8 threads (4 per load) with 5000 calls each; the main thread's two constructor calls.
    assert per_tid == [2] + [5000] * 8 or per_tid == [1, 1] + [5000] * 8, text


def test_dlopen_one_second_after_start(tmp_path):
    """The issue's scenario: the library is loaded 1 s after the program starts."""
    host, lib = target("plugin_host"), target("libplugin.so")
    out = tmp_path / "out.txt"
    started = time.monotonic()
    result = run([dprobe_path(), "-o", out, "-e", probe(lib), "-c", f"{host} {lib} 2000 2 1000"],
                 timeout=60)
    assert time.monotonic() - started >= 1.0
    assert result.returncode == 0, result.describe()
    assert count_of(out.read_text()) == expected(2000, threads=2), out.read_text()


def test_attach_before_the_first_dlopen(spawn):
    host, lib = target("plugin_host"), target("libplugin.so")
    app = spawn([host, lib, "3000", "2", "stdin"], stdin=True, name="plugin_host")
    time.sleep(0.2)
    dprobe = spawn([dprobe_path(), "-v", "-p", app.proc.pid, "-e",
                    'BEGIN { printf("armed\\n"); } ' + probe(lib)], name="dprobe")
    dprobe.wait_for_line("armed", timeout=20)
    deadline = time.monotonic() + 10  # stderr is read by another thread than stdout
    while "stays attached" not in dprobe.stderr and time.monotonic() < deadline:
        time.sleep(0.02)
    note = NOTE.search(dprobe.stderr)
    assert note and note.group(2) == str(app.proc.pid), dprobe.describe()
    # -v says why dprobe stays attached even with probes that could run free.
    assert re.search(r"stays attached to process \d+: its dynamic loader stops at 0x[0-9a-f]+",
                     dprobe.stderr), dprobe.describe()
    app.write("go\n")
    assert app.wait(timeout=60) == 0, app.describe()
    assert dprobe.wait(timeout=30) == 0, dprobe.describe()
    assert count_of(dprobe.stdout) == expected(3000, threads=2), dprobe.describe()
    assert len(re.findall(r"^process \d+ mapped \S+libplugin.so: its probes armed in \d+ us",
                          dprobe.stderr, re.M)) == 2, dprobe.describe()
    assert len(re.findall(r"^process \d+ unmapped \S+libplugin.so: its probes are forgotten$",
                          dprobe.stderr, re.M)) == 2, dprobe.describe()


@pytest.mark.parametrize("mechanism", [None, "int3-ptrace"])
def test_attach_when_already_loaded_then_reload(spawn, mechanism):
    """The library is mapped when dprobe attaches: armed at once (no note), forgotten at dlclose
    and armed again at the second dlopen. The first constructor call ran before dprobe came."""
    host, lib = target("plugin_host"), target("libplugin.so")
    app = spawn([host, lib, "3000", "0", "loaded"], stdin=True, name="plugin_host")
    app.wait_for_line("plugin_host: loaded", timeout=20)
    args = [dprobe_path(), "-p", app.proc.pid, "-e", 'BEGIN { printf("armed\\n"); } ' + probe(lib)]
    if mechanism:
        args[1:1] = ["--mechanism", mechanism]
    dprobe = spawn(args, name="dprobe")
    dprobe.wait_for_line("armed", timeout=20)
    assert not NOTE.search(dprobe.stderr), dprobe.describe()
    app.write("go\n")
    assert app.wait(timeout=60) == 0, app.describe()
    assert dprobe.wait(timeout=30) == 0, dprobe.describe()
    assert count_of(dprobe.stdout) == expected(3000, constructors=1), dprobe.describe()


def test_missing_symbol_in_a_library_not_mapped_yet_is_an_error(tmp_path):
    host, lib = target("plugin_host"), target("libplugin.so")
    result = run([dprobe_path(), "-e", f"uprobe:{lib}:no_such_function {{ @c = count(); }}",
                  "-c", f"{host} {lib} 10"], timeout=60)
    assert result.returncode != 0, result.describe()
    assert "no_such_function" in result.stderr, result.describe()
    assert "plugin_host: load" not in result.stdout, result.describe()


def test_static_program_cannot_wait_for_a_library(tmp_path):
    """No dynamic loader to watch: the probe is refused, as before deferred insertion."""
    lib = target("libplugin.so")
    static = target("loop_static")
    result = run([dprobe_path(), "-e", probe(lib), "-c", str(static)], timeout=60)
    assert result.returncode != 0, result.describe()
    assert re.search(r"libplugin.so: not mapped in process \d+, and its loads cannot be watched",
                     result.stderr), result.describe()


@pytest.mark.parametrize("mechanism", [None, "jump", "int3-boost", "int3-ptrace"])
@pytest.mark.parametrize("threads", [0, 2])
def test_fork_child_loads_are_armed_in_the_child(tmp_path, mechanism, threads):
    """The session watches library loads, which only a tracer of the child can see in the child:
    the fork child (cleaned and parked at its birth) is taken by a session of its own, which
    arms its loads as the parent's are. Both processes count exactly, each under its own pid;
    the parent waits for the child before its own loads."""
    host, lib = target("plugin_host"), target("libplugin.so")
    out = tmp_path / "out.txt"
    env = dict(os.environ, PLUGIN_HOST_FORK="1")
    args = [dprobe_path(), "-v", "-o", out, "-e",
            f"uprobe:{lib}:plugin_entry {{ @c = count(); @p[pid] = count(); }}",
            "-c", f"{host} {lib} 1000 {threads}"]
    if mechanism:
        args[1:1] = ["--mechanism", mechanism]
    result = run(args, timeout=60, env=env)
    assert result.returncode == 0, result.describe()
    each = f"{max(threads, 1)} x 1000 calls, sum ok"
    assert result.stdout == (f"plugin_host: child load 1: {each}\n"
                             f"plugin_host: child load 2: {each}\n"
                             "plugin_host: child exit 0\n"
                             f"plugin_host: load 1: {each}\n"
                             f"plugin_host: load 2: {each}\n"), result.describe()
    forked = re.search(r"^process (\d+) forked (\d+): its probes are armed again by a session "
                       r"of its own$", result.stderr, re.M)
    assert forked, result.describe()
    parent, child = forked.groups()
    text = out.read_text()
    per_process = expected(1000, threads=threads)
    assert count_of(text) == 2 * per_process, text
    assert count_of(text, f"@p[{parent}]") == per_process, text
    assert count_of(text, f"@p[{child}]") == per_process, text


def test_kill9_of_dprobe_while_waiting_for_the_library(spawn):
    """dprobe killed with -9 while its breakpoint sits on the loader: the agent, placed when
    probes started waiting, serves that int3, so the program's dlopen goes on unharmed."""
    host, lib = target("plugin_host"), target("libplugin.so")
    app = spawn([host, lib, "1000", "2", "stdin"], stdin=True, name="plugin_host")
    time.sleep(0.2)
    dprobe = spawn([dprobe_path(), "-p", app.proc.pid, "-e",
                    'BEGIN { printf("armed\\n"); } ' + probe(lib)], name="dprobe")
    dprobe.wait_for_line("armed", timeout=20)
    dprobe.signal(signal.SIGKILL)
    dprobe.wait(timeout=10)
    app.write("go\n")
    assert app.wait(timeout=60) == 0, app.describe()
    assert app.stdout.count("2 x 1000 calls, sum ok") == 2, app.describe()


def test_kill9_of_dprobe_watching_a_library_loaded_already(spawn):
    """The library was mapped at attach (jump probes, and the loader watched for its reload):
    after a kill -9 of dprobe, the dlclose and second dlopen go on unharmed."""
    host, lib = target("plugin_host"), target("libplugin.so")
    app = spawn([host, lib, "1000", "0", "loaded"], stdin=True, name="plugin_host")
    app.wait_for_line("plugin_host: loaded", timeout=20)
    dprobe = spawn([dprobe_path(), "-v", "-p", app.proc.pid, "-e",
                    'BEGIN { printf("armed\\n"); } ' + probe(lib)], name="dprobe")
    dprobe.wait_for_line("armed", timeout=20)
    deadline = time.monotonic() + 10  # stderr is read by another thread than stdout
    while "stays attached" not in dprobe.stderr and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "stays attached" in dprobe.stderr, dprobe.describe()
    dprobe.signal(signal.SIGKILL)
    dprobe.wait(timeout=10)
    app.write("go\n")
    assert app.wait(timeout=60) == 0, app.describe()
    assert app.stdout.count("1 x 1000 calls, sum ok") == 2, app.describe()


@pytest.mark.parametrize("threads", [0, 2])
def test_running_free_follows_a_reload(spawn, threads):
    """int3-boost: dprobe runs free of the process (not its tracer: no hit stops in ptrace), yet
    the library's dlclose and second dlopen are followed: the loader's breakpoint is served by
    the agent, which makes the loading thread wait until dprobe has taken the process, armed the
    new mapping and let go again. Exact counts, with threads calling in after each load."""
    host, lib = target("plugin_host"), target("libplugin.so")
    app = spawn([host, lib, "3000", str(threads), "loaded"], stdin=True, name="plugin_host")
    app.wait_for_line("plugin_host: loaded", timeout=20)
    dprobe = spawn([dprobe_path(), "-v", "--mechanism", "int3-boost", "-p", app.proc.pid, "-e",
                    'BEGIN { printf("armed\\n"); } ' + probe(lib)], name="dprobe")
    dprobe.wait_for_line("armed", timeout=20)
    deadline = time.monotonic() + 10  # stderr is read by another thread than stdout
    while "runs free" not in dprobe.stderr and time.monotonic() < deadline:
        time.sleep(0.02)
    assert re.search(r"^dprobe runs free of process \d+: its dynamic loader waits for dprobe",
                     dprobe.stderr, re.M), dprobe.describe()
    time.sleep(0.1)
    assert tracer_pid(app.proc.pid) == 0, dprobe.describe()
    app.write("go\n")
    assert app.wait(timeout=60) == 0, app.describe()
    assert app.stdout.count(f"{max(threads, 1)} x 3000 calls, sum ok") == 2, app.describe()
    assert dprobe.wait(timeout=30) == 0, dprobe.describe()
    assert count_of(dprobe.stdout) == expected(3000, threads=threads, constructors=1), \
        dprobe.describe()
    assert len(re.findall(r"^process \d+ mapped \S+libplugin.so: its probes armed in \d+ us",
                          dprobe.stderr, re.M)) == 1, dprobe.describe()


def running_free_on_a_loaded_host(spawn):
    """plugin_host with libplugin.so loaded (waiting on stdin before its dlclose), and dprobe
    attached with int3-boost (running free) once it printed "armed"."""
    host, lib = target("plugin_host"), target("libplugin.so")
    app = spawn([host, lib, "1000", "0", "loaded"], stdin=True, name="plugin_host")
    app.wait_for_line("plugin_host: loaded", timeout=20)
    dprobe = spawn([dprobe_path(), "--mechanism", "int3-boost", "-p", app.proc.pid, "-e",
                    'BEGIN { printf("armed\\n"); } ' + probe(lib)], name="dprobe")
    dprobe.wait_for_line("armed", timeout=20)
    return app, dprobe, lib


def test_running_free_stopped_between_loads_restores_everything(spawn):
    """Ctrl-C while running free with the loader's breakpoint in place: every byte is restored
    (the loader's too) and the program's later dlclose and dlopen run unprobed and unharmed."""
    app, dprobe, lib = running_free_on_a_loaded_host(spawn)
    loader = next(line.split()[-1] for line in open(f"/proc/{app.proc.pid}/maps")
                  if "/ld-linux" in line)
    assert text_mismatches(app.proc.pid, lib) and text_mismatches(app.proc.pid, loader)
    dprobe.signal(signal.SIGINT)
    assert dprobe.wait(timeout=30) == 0, dprobe.describe()
    assert not text_mismatches(app.proc.pid, lib)
    assert not text_mismatches(app.proc.pid, loader)
    app.write("go\n")
    assert app.wait(timeout=60) == 0, app.describe()
    assert app.stdout.count("1 x 1000 calls, sum ok") == 2, app.describe()


def test_kill9_of_dprobe_running_free_with_the_loader_waiting_for_it(spawn):
    """dprobe killed with -9 while running free: the loader's breakpoint still makes the loading
    thread ask for dprobe, sees it gone (kill(pid, 0)) and goes on at once."""
    app, dprobe, lib = running_free_on_a_loaded_host(spawn)
    time.sleep(0.1)
    dprobe.signal(signal.SIGKILL)
    dprobe.wait(timeout=10)
    started = time.monotonic()
    app.write("go\n")
    assert app.wait(timeout=60) == 0, app.describe()
    assert time.monotonic() - started < 2.0, "the loads waited for a dprobe that is gone"
    assert app.stdout.count("1 x 1000 calls, sum ok") == 2, app.describe()
