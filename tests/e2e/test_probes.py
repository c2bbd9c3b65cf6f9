"""Probe addressing (address, offset), -v, builtins whose values are only known at run time
(tid, nsecs), and targets that take signals or fork while probes fire."""

from __future__ import annotations

import re
import signal
import time

from conftest import (dprobe_path, instruction_starts, load_bias, run, run_dprobe, symbols,
                      target)
from test_attach import start_server, stop_server, wait_more_ticks

LOOP_1000 = "loop: 1000 calls, sum 1499500\n"


def count_output(n: int, probes: int = 1) -> str:
    plural = "probe" if probes == 1 else "probes"
    return f"Attaching {probes} {plural}...\n\n\n@calls: {n}\n"


def test_probe_by_address(tmp_path):
    """uprobe:PATH:0xADDR with ADDR = work's address in the ELF file (as `nm` shows it)."""
    binary = target("loop")
    address = symbols(binary)["work"]
    out = tmp_path / "out.txt"
    result = run_dprobe(["-o", out, "-e", f"uprobe:{binary}:{address:#x} {{ @calls = count(); }}",
                         "-c", f"{binary} 1000"])
    assert result.returncode == 0, result.describe()
    assert result.stdout == LOOP_1000 and result.stderr == "", result.describe()
    assert out.read_text() == count_output(1000)


def test_probe_by_symbol_plus_offset(tmp_path):
    """work+OFF on the last instruction of work (its ret): hit once per call."""
    binary = target("loop")
    start = symbols(binary)["work"]
    last = instruction_starts(binary, "work")[-1] - start
    assert last > 0
    out = tmp_path / "out.txt"
    result = run_dprobe(["-o", out, "-e", f"uprobe:{binary}:work+{last} {{ @calls = count(); }}",
                         "-c", f"{binary} 1000"])
    assert result.returncode == 0, result.describe()
    assert result.stdout == LOOP_1000 and result.stderr == "", result.describe()
    assert out.read_text() == count_output(1000)


def test_verbose_names_mechanism_and_address_command(tmp_path):
    """-v: one stderr line per probe site with `mechanism jump` (work fits a 5-byte jump) and the site's address
    (the run-time address or the file address of work); output otherwise unchanged."""
    binary = target("loop")
    file_address = symbols(binary)["work"]
    out = tmp_path / "out.txt"
    result = run_dprobe(["-v", "-o", out, "-e", f"uprobe:{binary}:work {{ @calls = count(); }}",
                         "-c", f"{binary} 1000"])
    assert result.returncode == 0, result.describe()
    assert result.stdout == LOOP_1000, result.describe()
    assert out.read_text() == count_output(1000)
    site_lines = [line for line in result.stderr.splitlines() if "mechanism" in line]
    assert len(site_lines) == 1, result.describe()
    assert "mechanism jump" in site_lines[0], result.describe()
    numbers = {int(h, 16) for h in re.findall(r"0x([0-9a-fA-F]+)", site_lines[0])}
    # With -c the load address is not known here; a run-time address of a PIE ends in the same
    # page offset as the file address.
    assert any(n == file_address or (n & 0xfff) == (file_address & 0xfff) and n > file_address
               for n in numbers), f"no address of work in {site_lines[0]!r}"


def test_verbose_names_runtime_address_attach(spawn):
    """-v with -p: the site line carries work's exact run-time address in the server."""
    server = start_server(spawn)
    binary = target("server")
    file_address = symbols(binary)["work"]
    runtime = load_bias(server.pid, binary) + file_address
    dprobe = spawn([dprobe_path(), "-v", "-p", server.pid, "-e",
                    f"uprobe:{binary}:work {{ @calls = count(); }}"], name="dprobe")
    dprobe.wait_for_line(r"Attaching 1 probe\.\.\.", timeout=20)
    time.sleep(0.3)
    dprobe.signal(signal.SIGINT)
    assert dprobe.wait(timeout=20) == 0, dprobe.describe()
    site_lines = [line for line in dprobe.stderr.splitlines() if "mechanism" in line]
    assert len(site_lines) == 1 and "mechanism jump" in site_lines[0], dprobe.describe()
    numbers = {int(h, 16) for h in re.findall(r"0x([0-9a-fA-F]+)", site_lines[0])}
    assert runtime in numbers or file_address in numbers, \
        f"neither {runtime:#x} nor {file_address:#x} in {site_lines[0]!r}"
    wait_more_ticks(server)
    stop_server(server)


def test_tid_keys(tmp_path):
    """@[tid] from four threads: one entry per worker thread id, each with exactly N hits."""
    binary = target("threads")
    out = tmp_path / "out.txt"
    result = run_dprobe(["-o", out, "-e", f"uprobe:{binary}:work {{ @[tid] = count(); }}",
                         "-c", f"{binary} 4 2000 --tids"], timeout=120)
    assert result.returncode == 0, result.describe()
    lines = result.stdout.splitlines()
    assert lines[-1] == "threads: 4 x 2000 calls, sum 23996000", result.describe()
    tids = sorted(int(line.split()[1]) for line in lines[:-1])
    assert len(tids) == 4 and len(set(tids)) == 4, result.describe()
    text = out.read_text()
    assert text.startswith("Attaching 1 probe...\n\n\n"), text
    entries = text[len("Attaching 1 probe...\n\n\n"):].splitlines()
    assert sorted(entries) == sorted(f"@[{tid}]: 2000" for tid in tids), text


def test_pid_equals_tid_single_thread(tmp_path):
    """In a single-threaded target pid == tid, and both are the pid of the command."""
    binary = target("loop")
    out = tmp_path / "out.txt"
    result = run_dprobe(["-o", out, "-e",
                         f"uprobe:{binary}:work /arg0 < 3/ {{ printf(\"%d %d\\n\", pid, tid); }}",
                         "-c", f"{binary} 10"])
    assert result.returncode == 0, result.describe()
    lines = out.read_text().split("\n")
    assert lines[0] == "Attaching 1 probe..." and lines[4:] == ["", "", ""], lines
    pairs = [tuple(map(int, line.split())) for line in lines[1:4]]
    assert len(set(pairs)) == 1 and pairs[0][0] == pairs[0][1] and pairs[0][0] > 1, pairs


def test_nsecs_monotonic(tmp_path):
    """nsecs is CLOCK_MONOTONIC in nanoseconds: inside the run's time window, never decreasing,
    and the loop's later calls are later."""
    binary = target("loop")
    out = tmp_path / "out.txt"
    before = time.monotonic_ns()
    result = run_dprobe(["-o", out, "-e",
                         f"uprobe:{binary}:work /arg0 % 100 == 0/ {{ printf(\"%llu\\n\", nsecs); }}",
                         "-c", f"{binary} 1000"])
    after = time.monotonic_ns()
    assert result.returncode == 0, result.describe()
    lines = out.read_text().split("\n")
    assert lines[0] == "Attaching 1 probe..." and lines[11:] == ["", "", ""], lines
    stamps = [int(v) for v in lines[1:11]]
    assert stamps == sorted(stamps), stamps
    assert before <= stamps[0] and stamps[-1] <= after, (before, stamps, after)


def test_signals_while_probing(tmp_path):
    """A 1 ms SIGALRM timer whose handler also calls work(): every call is counted (main's N plus
    the handler calls the target reports), and the target's main-line output is unchanged."""
    binary = target("signals")
    out = tmp_path / "out.txt"
    result = run_dprobe(["-o", out, "-e", f"uprobe:{binary}:work {{ @calls = count(); }}",
                         "-c", f"{binary} 3000"], timeout=120)
    assert result.returncode == 0, result.describe()
    match = re.fullmatch(r"signals: 3000 main calls, (\d+) handler calls, sum 13498500\n",
                         result.stdout)
    assert match, result.describe()
    handler_calls = int(match.group(1))
    assert handler_calls > 0, "no SIGALRM arrived during the run: the test proved nothing"
    assert out.read_text() == count_output(3000 + handler_calls)


def test_probe_in_signal_handler(tmp_path):
    """A probe on the (static) signal handler itself counts exactly the handler runs."""
    binary = target("signals")
    out = tmp_path / "out.txt"
    result = run_dprobe(["-o", out, "-e", f"uprobe:{binary}:on_alarm {{ @calls = count(); }}",
                         "-c", f"{binary} 3000"], timeout=120)
    assert result.returncode == 0, result.describe()
    match = re.fullmatch(r"signals: 3000 main calls, (\d+) handler calls, sum 13498500\n",
                         result.stdout)
    assert match and int(match.group(1)) > 0, result.describe()
    assert out.read_text() == count_output(int(match.group(1)))


def test_forker_child_output_and_status(tmp_path):
    """A forked child keeps the probes and counts (3N hits in all), exits 0 (the parent prints
    its status), and the output is the unprobed one."""
    binary = target("forker")
    unprobed = run([binary, "200"])
    assert unprobed.returncode == 0, unprobed.describe()
    out = tmp_path / "out.txt"
    result = run_dprobe(["-o", out, "-e", f"uprobe:{binary}:work {{ @calls = count(); }}",
                         "-c", f"{binary} 200"], timeout=60)
    assert result.returncode == 0, result.describe()
    assert result.stdout == unprobed.stdout, result.describe()
    assert "child exit 0" in result.stdout
    assert out.read_text() == count_output(600)
