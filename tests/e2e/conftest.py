"""Shared helpers for the dprobe end-to-end tests.

Environment (set by tests/e2e/CMakeLists.txt for the ctest test `e2e`):
  DPROBE          path of the dprobe binary
  DPROBE_TARGETS  directory holding the programs built from tests/targets

Nothing here skips: a missing binary, tool or target is a test failure that says what is
missing. Every subprocess has a timeout and is killed (with its process group) in teardown.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

E2E_DIR = Path(__file__).resolve().parent
DEFAULT_TIMEOUT = 60.0


# --------------------------------------------------------------------------------------------
# Locations


def dprobe_path() -> Path:
    value = os.environ.get("DPROBE")
    if not value:
        pytest.fail("DPROBE is not set: run through ctest (test `e2e`) or export DPROBE=<binary>")
    path = Path(value)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"dprobe binary not found: {path} (build the `dprobe` target first)")
    return path


def targets_dir() -> Path:
    value = os.environ.get("DPROBE_TARGETS")
    if not value:
        pytest.fail("DPROBE_TARGETS is not set: run through ctest (test `e2e`)")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"targets directory not found: {path} (build `dprobe_test_targets`)")
    return path


def target(name: str) -> Path:
    path = targets_dir() / name
    if not path.is_file():
        pytest.fail(f"test target not built: {path}")
    return path


def require_tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"required tool not installed: {name}")
    return found


@pytest.fixture(autouse=True, scope="session")
def _can_ptrace() -> None:
    ptrace_available()


@pytest.fixture
def dprobe() -> Path:
    return dprobe_path()


@pytest.fixture
def targets() -> Path:
    return targets_dir()


# --------------------------------------------------------------------------------------------
# Running processes


@dataclass
class Completed:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (f"command: {self.args}\nexit status: {self.returncode}\n"
                f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}")


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group started for proc (it is its own session leader)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def run(args: list[str], timeout: float = DEFAULT_TIMEOUT, stdin: str | None = None,
        env: dict | None = None, cwd: str | None = None) -> Completed:
    """Runs a command to completion; on timeout kills its whole process group and fails."""
    proc = subprocess.Popen(
        [str(a) for a in args], stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env=env, cwd=cwd)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        pytest.fail(f"timed out after {timeout} s: {args}\n--- stdout ---\n{out}"
                    f"--- stderr ---\n{err}")
    return Completed([str(a) for a in args], proc.returncode, out, err)


def run_dprobe(args: list, timeout: float = DEFAULT_TIMEOUT) -> Completed:
    return run([dprobe_path(), *args], timeout=timeout)


class Background:
    """A process running in the background whose stdout and stderr lines are collected by
    reader threads, so tests can wait for a line without blocking forever."""

    def __init__(self, args: list, stdin: bool = False, name: str | None = None):
        self.args = [str(a) for a in args]
        self.name = name or Path(self.args[0]).name
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.pid = self.proc.pid
        self._cond = threading.Condition()
        self._out: list[str] = []
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, sink: list[str]) -> None:
        for line in stream:
            with self._cond:
                sink.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def stdout(self) -> str:
        with self._cond:
            return "".join(self._out)

    @property
    def stderr(self) -> str:
        with self._cond:
            return "".join(self._err)

    def stdout_lines(self) -> list[str]:
        with self._cond:
            return [line.rstrip("\n") for line in self._out]

    def wait_for_line(self, pattern: str, timeout: float = 20.0, start: int = 0) -> re.Match:
        """Waits until a stdout line (from index `start` on) fully matches `pattern`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._out[start:]:
                    match = regex.fullmatch(line.rstrip("\n"))
                    if match:
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and
                                      not any(r.is_alive() for r in self._readers)):
                    break
                self._cond.wait(min(remaining, 0.1))
        pytest.fail(f"{self.name} (pid {self.pid}): no stdout line matching {pattern!r} within "
                    f"{timeout} s; exit status {self.proc.poll()}\n--- stdout ---\n{self.stdout}"
                    f"--- stderr ---\n{self.stderr}")

    def line_count(self) -> int:
        with self._cond:
            return len(self._out)

    def write(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = 20.0) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} (pid {self.pid}) did not exit within {timeout} s\n"
                        f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}")
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def kill(self) -> None:
        kill_group(self.proc)
        for reader in self._readers:
            reader.join(timeout=5)

    def describe(self) -> str:
        return (f"{self.args}: exit status {self.proc.poll()}\n--- stdout ---\n{self.stdout}"
                f"--- stderr ---\n{self.stderr}")


@pytest.fixture
def spawn():
    """spawn(args, stdin=False) starts a Background process that teardown always kills."""
    started: list[Background] = []

    def start(args: list, stdin: bool = False, name: str | None = None) -> Background:
        proc = Background(args, stdin=stdin, name=name)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


# --------------------------------------------------------------------------------------------
# ELF, symbols, instructions


def elf_exec_segments(path: Path) -> list[tuple[int, int, int]]:
    """(p_vaddr, p_offset, p_filesz) of every executable PT_LOAD segment of a 64-bit ELF."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        pytest.fail(f"{path}: not a little-endian ELF64 file")
    e_phoff, = struct.unpack_from("<Q", data, 0x20)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 0x36)
    segments = []
    for i in range(e_phnum):
        p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, _memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, e_phoff + i * e_phentsize)
        if p_type == 1 and p_flags & 1:  # PT_LOAD, PF_X
            segments.append((p_vaddr, p_offset, p_filesz))
    return segments


def load_bias(pid: int, path: Path) -> int:
    """Where the file's vaddr 0 sits in the process: start of its mapping at file offset 0
    (true for the PIE executables built here, whose first PT_LOAD has vaddr 0 and offset 0)."""
    real = os.path.realpath(path)
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except FileNotFoundError:
        pytest.fail(f"process {pid} is gone (it should still be running)")
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        # A file replaced on disk after it was mapped shows up as "PATH (deleted)".
        if len(fields) == 6 and fields[5] in (real, real + " (deleted)") and \
                int(fields[2], 16) == 0:
            return int(fields[0].split("-")[0], 16)
    pytest.fail(f"process {pid} has no mapping of {real} at file offset 0")


def vaddr_to_file_offset(path: Path, vaddr: int) -> int:
    for seg_vaddr, offset, size in elf_exec_segments(path):
        if seg_vaddr <= vaddr < seg_vaddr + size:
            return vaddr - seg_vaddr + offset
    pytest.fail(f"{path}: address {vaddr:#x} is not in an executable segment")


def read_memory(pid: int, address: int, size: int) -> bytes:
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        mem.seek(address)
        return mem.read(size)


def text_mismatches(pid: int, mapped_path: Path, original: Path | None = None) -> list[str]:
    """Compares every executable segment of `mapped_path` as the process sees it with the bytes
    of `original` (default: the same file). Returns human-readable differences (empty: equal)."""
    original = Path(original or mapped_path)
    file_bytes = original.read_bytes()
    bias = load_bias(pid, mapped_path)
    problems = []
    for vaddr, offset, size in elf_exec_segments(original):
        live = read_memory(pid, bias + vaddr, size)
        expected = file_bytes[offset:offset + size]
        if live != expected:
            diffs = [i for i in range(min(len(live), len(expected))) if live[i] != expected[i]]
            shown = ", ".join(
                f"vaddr {vaddr + i:#x}: {live[i]:#04x} (file {expected[i]:#04x})" for i in diffs[:8])
            problems.append(f"{len(diffs)} byte(s) differ in segment at {vaddr:#x}: {shown}")
    return problems


def assert_text_matches_file(pid: int, mapped_path: Path, original: Path | None = None) -> None:
    problems = text_mismatches(pid, mapped_path, original)
    assert not problems, f"process {pid}: code differs from {original or mapped_path}:\n" + \
        "\n".join(problems)


def symbols(path: Path) -> dict[str, int]:
    """name -> st_value for every symbol `nm` lists with an address (local labels included)."""
    out = subprocess.run([require_tool("nm"), str(path)], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    table = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 3:
            table[fields[2]] = int(fields[0], 16)
    return table


def instruction_starts(path: Path, symbol: str) -> list[int]:
    """Addresses (file vaddrs) of the instructions objdump decodes in `symbol`'s body."""
    out = subprocess.run([require_tool("objdump"), "-d", "--no-show-raw-insn",
                          f"--disassemble={symbol}", str(path)],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    starts = [int(m.group(1), 16) for m in re.finditer(r"^\s+([0-9a-f]+):\s", out, re.M)]
    if not starts:
        pytest.fail(f"objdump found no instructions in {symbol} of {path}")
    return starts


# --------------------------------------------------------------------------------------------
# Process state


def tracer_pid(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        pytest.fail(f"process/thread {pid} is gone (it should still be running)")
    return int(re.search(r"^TracerPid:\s+(\d+)", status, re.M).group(1))


def thread_ids(pid: int) -> list[int]:
    try:
        return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        pytest.fail(f"process {pid} is gone (it should still be running)")


def free_pid() -> int:
    """A pid that no process or thread uses right now, below pid_max."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    candidate = min(pid_max - 1, 999999)
    while Path(f"/proc/{candidate}").exists():
        candidate -= 1
    return candidate


def assert_untraced(pid: int) -> None:
    for tid in thread_ids(pid):
        tracer = tracer_pid(tid)
        assert tracer == 0, f"thread {tid} of process {pid} is still traced by {tracer}"


SEIZE_HELPER = r"""
import ctypes, os, sys, time
PTRACE_SEIZE = 0x4206
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
pid = int(sys.argv[1])
for tid in sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")):
    if libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0:
        print(f"seize {tid} failed: errno {ctypes.get_errno()}", flush=True)
        sys.exit(1)
print("seized", flush=True)
# PTRACE_SEIZE does not stop the tracee; stay alive (keeping it traced) until killed.
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def seize(spawn):
    """seize(pid) starts a Python process that PTRACE_SEIZEs every thread of pid and holds it;
    returns the Background helper (its comm is python3)."""
    def start(pid: int, hold_seconds: float = 60.0) -> Background:
        helper = spawn([sys.executable, "-c", SEIZE_HELPER, str(pid), str(hold_seconds)],
                       name="ptrace-seize-helper")
        helper.wait_for_line("seized", timeout=10)
        return helper
    return start


def error_line(result: Completed, *phrases: str) -> str:
    """Asserts the contract for non-syntax errors: exit status 1 and stderr is exactly one line
    starting with 'dprobe: error: ' that contains every phrase. Returns the line."""
    assert result.returncode == 1, result.describe()
    lines = result.stderr.splitlines()
    assert len(lines) == 1, "expected exactly one stderr line\n" + result.describe()
    line = lines[0]
    assert line.startswith("dprobe: error: "), result.describe()
    for phrase in phrases:
        assert phrase in line, f"stderr line lacks {phrase!r}\n" + result.describe()
    return line


def ptrace_available() -> None:
    """ptrace needs root or a permissive Yama scope; say so plainly instead of failing oddly."""
    scope = Path("/proc/sys/kernel/yama/ptrace_scope")
    if os.geteuid() != 0 and scope.exists() and scope.read_text().strip() != "0":
        pytest.fail("these tests attach with ptrace: run as root or set ptrace_scope to 0")

