"""Errors about processes and binaries: one line, exit 1, and the target left exactly as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import (assert_text_matches_file, assert_untraced, error_line, free_pid,
                      instruction_starts, run_dprobe, symbols, target, tracer_pid,
                      vaddr_to_file_offset)
from test_attach import start_server, stop_server, wait_more_ticks


def count_script(binary, where: str = "work") -> str:
    return f"uprobe:{binary}:{where} {{ @calls = count(); }}"


def assert_untouched(server, binary: Path, original: Path | None = None) -> None:
    assert server.alive(), server.describe()
    assert_untraced(server.pid)
    wait_more_ticks(server, 2)
    assert_text_matches_file(server.pid, binary, original)


def test_nonexistent_pid():
    pid = free_pid()
    result = run_dprobe(["-p", pid, "-e", count_script(target("loop"))], timeout=20)
    error_line(result, f"process {pid} does not exist")
    assert result.stdout == "", result.describe()


def test_already_traced(spawn, seize):
    """Another tracer holds the process: dprobe names it (pid and comm) and leaves both alone."""
    server = start_server(spawn)
    helper = seize(server.pid)
    comm = Path(f"/proc/{helper.pid}/comm").read_text().strip()
    result = run_dprobe(["-p", server.pid, "-e", count_script(target("server"))], timeout=20)
    error_line(result, f"cannot trace process {server.pid}",
               f"already traced by process {helper.pid} ({comm})")
    assert result.stdout == "", result.describe()
    assert tracer_pid(server.pid) == helper.pid, "the other tracer lost the process"
    wait_more_ticks(server, 2)
    assert_text_matches_file(server.pid, target("server"))
    helper.kill()  # its tracees are released; they must run on normally
    assert_untouched(server, target("server"))
    stop_server(server)


def test_offset_inside_instruction_attach(spawn):
    """work+K with K inside an instruction of a running process: refused, nothing written."""
    binary = target("server")
    start = symbols(binary)["work"]
    starts = {a - start for a in instruction_starts(binary, "work")}
    inside = next(k for k in range(1, 16) if k not in starts)
    server = start_server(spawn)
    result = run_dprobe(["-p", server.pid, "-e", count_script(binary, f"work+{inside}")],
                        timeout=20)
    error_line(result, "is not on an instruction boundary")
    assert result.stdout == "", result.describe()
    assert_untouched(server, binary)
    stop_server(server)


def test_offset_inside_instruction_command():
    """reloc_kinds+K in the middle of the 7-byte RIP-relative load: refused before the command
    starts (its output would show on stdout)."""
    binary = target("reloc")
    table = symbols(binary)
    inside = table["reloc_rip_load"] - table["reloc_kinds"] + 3
    result = run_dprobe(["-e", count_script(binary, f"reloc_kinds+{inside}"),
                         "-c", f"{binary} 5"], timeout=20)
    error_line(result, "is not on an instruction boundary")
    assert result.stdout == "", result.describe()


def copy_server(tmp_path: Path) -> tuple[Path, Path]:
    exe = tmp_path / "server"
    original = tmp_path / "server.orig"
    shutil.copy2(target("server"), exe)
    shutil.copy2(target("server"), original)
    return exe, original


def test_binary_replaced_by_other_build(spawn, tmp_path):
    """The file was replaced (mv over it) by a different build after the process started: the
    probe is refused; the process keeps its original code."""
    exe, original = copy_server(tmp_path)
    server = start_server(spawn, path=exe)
    replacement = tmp_path / "server.new"
    shutil.copy2(target("server_v2"), replacement)
    replacement.rename(exe)
    result = run_dprobe(["-p", server.pid, "-e", count_script(exe)], timeout=20)
    error_line(result, "changed since")
    assert result.stdout == "", result.describe()
    assert_untouched(server, exe, original)
    stop_server(server)


def test_binary_patched_at_probe_site(spawn, tmp_path):
    """Same build (same build-id, same size), but the bytes of work() differ from what the
    process runs: the probe is refused; the process keeps its original code."""
    exe, original = copy_server(tmp_path)
    server = start_server(spawn, path=exe)
    data = bytearray(original.read_bytes())
    offset = vaddr_to_file_offset(original, symbols(original)["work"])
    data[offset] ^= 0x01  # a different first instruction byte (lea -> another opcode)
    replacement = tmp_path / "server.new"
    replacement.write_bytes(bytes(data))
    replacement.chmod(0o755)
    replacement.rename(exe)
    result = run_dprobe(["-p", server.pid, "-e", count_script(exe)], timeout=20)
    error_line(result, "changed since")
    assert result.stdout == "", result.describe()
    assert_untouched(server, exe, original)
    stop_server(server)


def test_unknown_symbol_attach(spawn):
    """A missing function while attaching to a live process: one line with a suggestion, the
    process untouched."""
    server = start_server(spawn)
    binary = target("server")
    result = run_dprobe(["-p", server.pid, "-e", count_script(binary, "wrk")], timeout=20)
    error_line(result, f"{binary}: no function 'wrk'", "did you mean 'work'")
    assert result.stdout == "", result.describe()
    assert_untouched(server, binary)
    stop_server(server)

