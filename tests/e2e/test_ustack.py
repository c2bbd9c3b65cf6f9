"""User stacks: `ustack`, `ustack(N)`, `ustack(perf)`, `ustack(perf, N)`, as map keys (alone and in
tuples), map values, print() and printf("%s"), on the known call tree of tests/targets/calltree.cpp
built with frame pointers (calltree_fp) and without (calltree_nofp, .eh_frame only).

Expectations come from the call tree and from objdump, never from a dprobe run:
  - frame names are the demangled symbols of the tree (the names bpftrace 0.17 prints, recorded in
    USTACK_FORMATS.md), in order from the probed function outward;
  - each caller's offset is exactly its return address (the instruction after its call to the
    frame below) minus its symbol's address, found with objdump, printed in decimal as bpftrace
    prints it;
  - counts are the call counts the target's arguments select.
Unlike bpftrace (kernel frame-pointer walk), dprobe must show the true callers on calltree_nofp
too. The whitespace of every form is the one bpftrace prints (see USTACK_FORMATS.md).

Below main (or below app::worker in threads) the libc start frames are checked by name: bpftrace
ends at __libc_start_call_main (main thread) and start_thread (other threads) because libc has no
frame pointers; a CFI unwinder may go on to __libc_start_main/_start and clone3, which is accepted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import instruction_starts, require_tool, run, run_dprobe, symbols, target

BUILDS = ["calltree_fp", "calltree_nofp"]

# Mangled symbol -> the demangled name stacks print (abi::__cxa_demangle, as bpftrace shows them:
# a function template keeps its return type).
LEAF = "_Z4leafl"
WALK = "_ZN3app6detail4walkIiEET_S2_"
RUN = "_ZN3app6Runner3runEi"
OTHER = "_Z10other_pathv"
RECURSE = "_ZN3app7recurseEi"
WORKER = "_ZN3app6workerEPv"
MAIN = "main"
DEMANGLED = {
    LEAF: "leaf(long)",
    WALK: "int app::detail::walk<int>(int)",
    RUN: "app::Runner::run(int)",
    OTHER: "other_path()",
    RECURSE: "app::recurse(int)",
    WORKER: "app::worker(void*)",
    MAIN: "main",
}
RECURSE_DEPTH = 3  # calltree.cpp's RECURSE_DEPTH

# The paths of calltree.cpp, from leaf outward up to (not including) the driver (main or worker).
PATHS = {
    "a": [LEAF, WALK, RUN],
    "b": [LEAF, OTHER],
    "c": [LEAF] + [RECURSE] * RECURSE_DEPTH,
}

# Start frames below the driver: (regex of the frame, required). bpftrace 0.17 shows only the
# required ones (its frame-pointer walk stops in libc); the optional ones are where a CFI unwinder
# through libc ends (glibc 2.36 aliases: __libc_start_main_impl, __libc_start_main_alias_2,
# __libc_start_main@@GLIBC_2.34).
MAIN_TAIL = [(r"__libc_start_call_main\+\d+", True),
             (r"__libc_start_main\w*(?:@@?GLIBC_[\d.]+)?\+\d+", False),
             (r"_start\+\d+", False)]
THREAD_TAIL = [(r"start_thread\+\d+", True),
               (r"(?:__)?clone3?\+\d+", False)]

# bpftrace 0.17's messages for invalid ustack() arguments (USTACK_FORMATS.md). dprobe reports these
# at compile time as `stdin:LINE:COL: message`; the exact wording may be adjusted by the
# implementer, so only the exit status, the location prefix and the word "ustack" or "stack" are
# required. 0 and 200 fail in bpftrace only when the kernel creates the stack map (200 >
# kernel.perf_event_max_stack = 127); dprobe must reject them before starting anything.
BPFTRACE_ERRORS = {
    "0": "ERROR: failed to create stack id map: Invalid argument\n"
         "ERROR: This might have happened because kernel.perf_event_max_stack is smaller than 0. "
         "Try to tweak this value with sysctl kernel.perf_event_max_stack=<new value>",
    "200": "ERROR: failed to create stack id map: Invalid argument\n"
           "ERROR: This might have happened because kernel.perf_event_max_stack is smaller than "
           "200. Try to tweak this value with sysctl kernel.perf_event_max_stack=<new value>",
    "foo": "stdin:1:63-75: ERROR: Unknown identifier: 'foo'\n"
           "stdin:1:63-76: ERROR: ustack() expects a integer literal (none provided)",
    "perf, perf": "stdin:1:63-83: ERROR: ustack() expects a integer literal (stack mode provided)",
    '"x"': "stdin:1:63-76: ERROR: ustack() expects a integer literal (string provided)",
    "1025": "stdin:1:63-77: ERROR: ustack([int limit]): limit shouldn't exceed 1024, 1025 given",
    "perf, 3, 4": "stdin:1:63-83: ERROR: ustack() takes up to 2 arguments (3 provided)",
    "3, perf": "stdin:1:63-80: ERROR: ustack() expects a stack mode literal (integer provided)",
    "3, 4": "stdin:1:63-77: ERROR: ustack() expects a stack mode literal (integer provided)",
    "-1": "stdin:1:63-75: ERROR: ustack([int limit]): limit shouldn't exceed 1024, "
          "18446744073709551615 given",
}


# --------------------------------------------------------------------------------------------
# What the binary says: return offsets from objdump


FUNC_HEADER = re.compile(r"^([0-9a-f]+) <([^>]+)>:$")
INSN = re.compile(r"^\s+([0-9a-f]+):\s+(\S+)\s*(.*)$")


@dataclass
class Tree:
    path: Path
    symbols: dict[str, int]
    # (caller, callee) -> offsets in caller of the instruction after each call to callee
    returns: dict[tuple[str, str], set[int]]

    def ret(self, caller: str, callee: str) -> set[int]:
        offsets = self.returns.get((caller, callee))
        assert offsets, f"{self.path}: objdump shows no call from {caller} to {callee}"
        return offsets


_TREES: dict[str, Tree] = {}


def tree(build: str) -> Tree:
    if build not in _TREES:
        path = target(build)
        out = subprocess.run([require_tool("objdump"), "-d", "--no-show-raw-insn", str(path)],
                             capture_output=True, text=True, check=True, timeout=60).stdout
        returns: dict[tuple[str, str], set[int]] = {}
        func, start, pending = None, 0, None
        for line in out.splitlines():
            header = FUNC_HEADER.match(line)
            if header:
                func, start, pending = header.group(2), int(header.group(1), 16), None
                continue
            insn = INSN.match(line)
            if not insn or func is None:
                continue
            address = int(insn.group(1), 16)
            if pending is not None:
                returns.setdefault((func, pending), set()).add(address - start)
                pending = None
            if insn.group(2).startswith("call"):
                callee = re.search(r"<([^>+]+)>", insn.group(3))
                pending = callee.group(1) if callee else None
        _TREES[build] = Tree(path, symbols(path), returns)
    return _TREES[build]


def expected_frames(build: str, path: str, driver: str, first_offsets: set[int] | None = None,
                    drop_leaf: bool = False) -> list[tuple[str, set[int]]]:
    """[(demangled name, allowed offsets)] of `path` from the leaf out to `driver` (main or
    app::worker). The leaf is at `first_offsets` (default {0}: the probe at its entry)."""
    t = tree(build)
    chain = PATHS[path] + [driver]
    frames = [(DEMANGLED[LEAF], first_offsets or {0})]
    for callee, caller in zip(chain, chain[1:]):
        frames.append((DEMANGLED[caller], t.ret(caller, callee)))
    return frames[1:] if drop_leaf else frames


def frame_problems(frames: list[str], expected: list[tuple[str, set[int]]],
                   tail: list[tuple[str, bool]] | None) -> list[str]:
    """Differences between printed frames ("name+off") and the expectation; `tail`: the start
    frames that must/may follow (None: nothing may follow, as for ustack(N))."""
    problems = []
    for i, (name, offsets) in enumerate(expected):
        if i >= len(frames):
            problems.append(f"frame {i}: missing, expected {name}+{sorted(offsets)}")
            continue
        match = re.fullmatch(re.escape(name) + r"\+(\d+)", frames[i])
        if not match:
            problems.append(f"frame {i}: {frames[i]!r}, expected {name}+{sorted(offsets)}")
        elif int(match.group(1)) not in offsets:
            problems.append(f"frame {i}: {frames[i]!r}, offset not in {sorted(offsets)} "
                            f"(objdump's return addresses)")
    rest = frames[len(expected):]
    if tail is None:
        if rest:
            problems.append(f"unexpected frames after {len(expected)}: {rest}")
        return problems
    j = 0
    for pattern, required in tail:
        if j < len(rest) and re.fullmatch(pattern, rest[j]):
            j += 1
        elif required:
            problems.append(f"start frame {len(expected) + j}: {rest[j:j + 1]}, expected "
                            f"/{pattern}/")
    if j < len(rest) and not problems:
        problems.append(f"unexpected frames after the start frames: {rest[j:]}")
    return problems


# --------------------------------------------------------------------------------------------
# Running and parsing


# One map entry whose key is (or starts with) a stack: "@NAME[\n" frame lines "]: COUNT" or
# ", more key]: COUNT". Frame lines are 4 spaces + "name+off" (default mode) or a tab +
# "hex name+off (path)" (perf mode).
STACK_ENTRY = re.compile(r"^@(\w*)\[\n((?:(?:    |\t)[^\n]*\n)*)([^\n]*)\]: (\d+)$", re.M)


@dataclass
class Entry:
    name: str
    frames: list[str]   # lines without their indentation
    raw: list[str]      # lines as printed
    rest: str           # what follows the stack in the key ("" or ", comm")
    count: int


def parse_stack_entries(text: str) -> list[Entry]:
    entries = []
    for match in STACK_ENTRY.finditer(text):
        raw = match.group(2).splitlines()
        entries.append(Entry(match.group(1), [line.lstrip(" \t") for line in raw], raw,
                             match.group(3), int(match.group(4))))
    return entries


ATTACHING = re.compile(r"Attaching \d+ probes?\.\.\.\n")


def body(text: str) -> str:
    """The output without its first line "Attaching N probes..." (required)."""
    match = ATTACHING.match(text)
    assert match, f"output does not start with 'Attaching N probes...':\n{text}"
    return text[match.end():]


def unprobed(build: str, words: list) -> subprocess.CompletedProcess:
    result = run([target(build), *[str(w) for w in words]], timeout=60)
    assert result.returncode == 0, result.describe()
    return result


def probe(tmp_path, build: str, script: str, words: list, extra: list | None = None,
          timeout: float = 120) -> str:
    """Runs `dprobe [extra] -o OUT -e SCRIPT -c 'BUILD WORDS'` (BIN in SCRIPT: the target's path);
    checks dprobe's exit status 0 and that the target printed exactly what it prints unprobed;
    returns OUT's text."""
    expected = unprobed(build, words)
    binary = target(build)
    out = tmp_path / "out.txt"
    args = [*(extra or []), "-o", out, "-e", script.replace("BIN", str(binary)),
            "-c", " ".join([str(binary), *[str(w) for w in words]])]
    result = run_dprobe(args, timeout=timeout)
    text = out.read_text() if out.exists() else ""
    assert result.returncode == 0, result.describe() + text
    assert result.stdout == expected.stdout, result.describe()
    return text


def check_stack_map(text: str, build: str, counts: dict[str, int], driver: str,
                    tail: list[tuple[str, bool]] | None, indent: str = "    ",
                    limit: int | None = None, first_offsets: set[int] | None = None,
                    drop_leaf: bool = False, threads: int = 0) -> list[Entry]:
    """Every line of `text` belongs to a stack entry of map @ (or is empty); one entry per path
    (with threads: one per path, or one per path and thread as bpftrace 0.17 keys stacks by
    thread), frames as expected, counts exact, entries in bpftrace's order (ascending count)."""
    entries = parse_stack_entries(text)
    covered = "".join(m.group(0) for m in STACK_ENTRY.finditer(text))
    stray = [line for line in STACK_ENTRY.sub("", ATTACHING.sub("", text, count=1)).splitlines()
             if line.strip()]
    assert not stray, f"lines outside stack entries: {stray}\n{text}"
    assert covered, f"no stack map entries in the output:\n{text}"
    for entry in entries:
        assert entry.name == "" and entry.rest == "", f"unexpected key {entry}\n{text}"
        for line in entry.raw:
            assert line.startswith(indent) and not line[len(indent):].startswith((" ", "\t")), \
                f"frame line {line!r} is not indented by exactly {indent!r}\n{text}"
    remaining = list(entries)
    for path, count in counts.items():
        frames = expected_frames(build, path, driver, first_offsets, drop_leaf)
        frames = frames[:limit] if limit else frames
        path_tail = None if limit else tail  # every path is longer than the limits used here
        mine = [e for e in remaining if not frame_problems(e.frames, frames, path_tail)]
        if not mine:
            near = "\n".join(f"  {e.frames}: {frame_problems(e.frames, frames, path_tail)}"
                             for e in remaining)
            pytest.fail(f"no entry for path {path} ({[n for n, _ in frames]}), count {count}; "
                        f"entries and why they differ:\n{near}\n--- output ---\n{text}")
        for e in mine:
            remaining.remove(e)
        total = sum(e.count for e in mine)
        assert total == count, f"path {path}: count {total} != {count} ({mine})\n{text}"
        if threads:
            assert len(mine) in (1, threads), \
                f"path {path}: {len(mine)} entries (expected 1, or {threads} per thread)\n{text}"
            assert all(e.count * len(mine) == count for e in mine), f"path {path}: {mine}\n{text}"
        else:
            assert len(mine) == 1, f"path {path}: {len(mine)} entries\n{text}"
    assert not remaining, f"entries for no path of the tree: {remaining}\n{text}"
    counts_in_order = [e.count for e in entries]
    assert counts_in_order == sorted(counts_in_order), \
        f"entries not in ascending count order (bpftrace's): {counts_in_order}\n{text}"
    return entries


# Distinct counts per path, so a swapped count cannot pass.
A, B, C = 5, 3, 4
COUNTS = {"a": A, "b": B, "c": C}
WORDS = [A, B, C]
LEAF_PROBE = "uprobe:BIN:" + LEAF


# --------------------------------------------------------------------------------------------
# The targets are built as they claim (these pass without any ustack support)


def prologue_lines(build: str, symbol: str) -> list[str]:
    out = subprocess.run([require_tool("objdump"), "-d", "--no-show-raw-insn",
                          f"--disassemble={symbol}", str(target(build))],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return [m.group(2) + " " + m.group(3) for m in
            (INSN.match(line) for line in out.splitlines()) if m]


TREE_FUNCTIONS = [LEAF, WALK, RUN, OTHER, RECURSE, WORKER, MAIN]


@pytest.mark.parametrize("symbol", TREE_FUNCTIONS)
def test_build_fp_has_frame_pointer_prologues(symbol):
    insns = prologue_lines("calltree_fp", symbol)[:4]
    assert insns and insns[0].split() == ["push", "%rbp"], insns
    assert any(i.split() == ["mov", "%rsp,%rbp"] for i in insns), insns


@pytest.mark.parametrize("symbol", TREE_FUNCTIONS)
def test_build_nofp_has_no_frame_pointer(symbol):
    insns = prologue_lines("calltree_nofp", symbol)
    assert insns, symbol
    assert not any(i.split() == ["mov", "%rsp,%rbp"] for i in insns), insns


@pytest.mark.parametrize("build", BUILDS)
def test_build_has_symbols_and_eh_frame(build):
    out = subprocess.run([require_tool("readelf"), "-S", "-W", str(target(build))],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    for section in (".symtab", ".eh_frame", ".eh_frame_hdr"):
        assert re.search(rf"\s{re.escape(section)}\s", out), f"{build}: no {section}\n{out}"
    table = symbols(target(build))
    for symbol in TREE_FUNCTIONS:
        assert symbol in table, f"{build}: no symbol {symbol}"


@pytest.mark.parametrize("build", BUILDS)
def test_target_output(build):
    # leaf returns x+1: path a calls leaf(1), b leaf(2), c leaf(3).
    result = unprobed(build, WORDS)
    assert result.stdout == f"calltree: leaf calls {A + B + C}, sum {2 * A + 3 * B + 4 * C}\n"
    result = unprobed(build, WORDS + [4])
    assert result.stdout == \
        f"calltree: leaf calls {4 * (A + B + C)}, sum {4 * (2 * A + 3 * B + 4 * C)}\n"


# --------------------------------------------------------------------------------------------
# ustack as a map key


@pytest.mark.parametrize("build", BUILDS)
def test_ustack_count(tmp_path, build):
    text = probe(tmp_path, build, LEAF_PROBE + " { @[ustack] = count(); }", WORDS)
    check_stack_map(text, build, COUNTS, MAIN, MAIN_TAIL)


@pytest.mark.parametrize("build", BUILDS)
def test_ustack_3(tmp_path, build):
    text = probe(tmp_path, build, LEAF_PROBE + " { @[ustack(3)] = count(); }", WORDS)
    entries = check_stack_map(text, build, COUNTS, MAIN, None, limit=3)
    assert all(len(e.frames) == 3 for e in entries), entries


@pytest.mark.parametrize("build", BUILDS)
def test_ustack_1(tmp_path, build):
    # One frame: the three paths share the key leaf(long)+0.
    text = probe(tmp_path, build, LEAF_PROBE + " { @[ustack(1)] = count(); }", WORDS)
    entries = parse_stack_entries(text)
    assert [(e.frames, e.count) for e in entries] == [(["leaf(long)+0"], A + B + C)], text


PERF_LINE = re.compile(r"\t([0-9a-f]+) (\S.*)\+(\d+) \((/[^()]*)\)")


def check_perf_frames(build: str, entry: Entry) -> None:
    """perf-mode lines: TAB hex-address (no 0x) SPACE name+off SPACE (absolute path). The
    program's frames name its real path, and their addresses minus (symbol + offset) are one
    page-aligned load bias; the libc frames name libc.so.6."""
    binary = os.path.realpath(target(build))
    table = symbols(target(build))
    by_name = {DEMANGLED[s]: table[s] for s in DEMANGLED}
    by_name["_start"] = table["_start"]  # the program's own entry point, where a CFI walk ends
    biases = set()
    for line in entry.raw:
        match = PERF_LINE.fullmatch(line)
        assert match, f"perf frame line {line!r} is not TAB hex name+off (path)"
        address, name, offset, path = match.groups()
        if name in by_name:
            assert path == binary, line
            biases.add(int(address, 16) - by_name[name] - int(offset))
        else:
            assert path.endswith("/libc.so.6"), line
    assert len(biases) == 1 and biases.pop() % 4096 == 0, entry.raw


@pytest.mark.parametrize("build", BUILDS)
def test_ustack_perf(tmp_path, build):
    text = probe(tmp_path, build, LEAF_PROBE + " { @[ustack(perf)] = count(); }", WORDS)
    # The names as the default mode checks them, from the "name+off" inside each perf line.
    entries = parse_stack_entries(text)
    assert entries, text
    for entry in entries:
        check_perf_frames(build, entry)
    plain = "".join(
        "@[\n" + "".join(f"    {PERF_LINE.fullmatch(l).group(2)}+{PERF_LINE.fullmatch(l).group(3)}\n"
                         for l in e.raw) + f"]: {e.count}\n" for e in entries)
    check_stack_map(plain, build, COUNTS, MAIN, MAIN_TAIL)


@pytest.mark.parametrize("build", BUILDS)
def test_ustack_perf_3(tmp_path, build):
    text = probe(tmp_path, build, LEAF_PROBE + " { @[ustack(perf, 3)] = count(); }", WORDS)
    entries = parse_stack_entries(text)
    assert len(entries) == 3, text
    for entry in entries:
        assert len(entry.raw) == 3, entry
        check_perf_frames(build, entry)


@pytest.mark.parametrize("build", BUILDS)
def test_ustack_in_tuple_key(tmp_path, build):
    # "@[\n    frame\n ...\n, comm]: N": the stack's own lines, then ", " and the next field.
    text = probe(tmp_path, build, LEAF_PROBE + " { @[ustack(3), comm] = count(); }", WORDS)
    comm = build[:15]
    entries = parse_stack_entries(text)
    assert len(entries) == 3 and all(e.rest == f", {comm}" for e in entries), text
    stripped = STACK_ENTRY.sub(lambda m: m.group(0).replace(f", {comm}]", "]"), text)
    check_stack_map(stripped, build, COUNTS, MAIN, None, limit=3)


@pytest.mark.parametrize("mechanism", ["jump", "int3-boost", "int3-ptrace"])
@pytest.mark.parametrize("build", BUILDS)
def test_ustack_every_mechanism(tmp_path, build, mechanism):
    # The agent walks for jump and int3-boost hits (from a trampoline's frame, from a signal
    # handler's), dprobe itself through ptrace for int3-ptrace: the same stacks either way.
    text = probe(tmp_path, build, LEAF_PROBE + " { @[ustack] = count(); }", WORDS,
                 extra=["--mechanism", mechanism])
    check_stack_map(text, build, COUNTS, MAIN, MAIN_TAIL)


@pytest.mark.parametrize("mechanism", ["jump", "int3-boost", "int3-ptrace"])
def test_ustack_threads_every_mechanism(tmp_path, mechanism):
    threads = 4
    text = probe(tmp_path, "calltree_nofp", LEAF_PROBE + " { @[ustack] = count(); }",
                 WORDS + [threads], extra=["--mechanism", mechanism])
    check_stack_map(text, "calltree_nofp", {p: threads * n for p, n in COUNTS.items()}, WORKER,
                    THREAD_TAIL, threads=threads)


@pytest.mark.parametrize("build", BUILDS)
def test_ustack_threads(tmp_path, build):
    # Each of 4 threads runs every path: a stack's counts over the threads add up exactly; the
    # stacks end in app::worker and the thread start frames.
    threads = 4
    text = probe(tmp_path, build, LEAF_PROBE + " { @[ustack] = count(); }", WORDS + [threads])
    check_stack_map(text, build, {p: threads * n for p, n in COUNTS.items()}, WORKER, THREAD_TAIL,
                    threads=threads)


@pytest.mark.parametrize("build", BUILDS)
def test_ustack_after_prologue(tmp_path, build):
    # leaf+N at its third instruction: after the push/mov of calltree_fp's prologue, inside the
    # red-zone code of calltree_nofp. The callers are the same; the first frame is leaf+N.
    t = tree(build)
    starts = instruction_starts(t.path, LEAF)
    offset = starts[2] - t.symbols[LEAF]
    assert offset > 0
    text = probe(tmp_path, build, f"uprobe:BIN:{LEAF}+{offset} {{ @[ustack] = count(); }}", WORDS)
    check_stack_map(text, build, COUNTS, MAIN, MAIN_TAIL, first_offsets={offset})


@pytest.mark.parametrize("build", BUILDS)
def test_ustack_uretprobe(tmp_path, build):
    # As bpftrace shows it: the stack after the return, whose first frame is the return address
    # in the caller (leaf's own frame is gone), then the caller's callers.
    text = probe(tmp_path, build, f"uretprobe:BIN:{LEAF} {{ @[ustack] = count(); }}", WORDS)
    check_stack_map(text, build, COUNTS, MAIN, MAIN_TAIL, drop_leaf=True)


@pytest.mark.parametrize("build", BUILDS)
def test_ustack_uretprobe_of_walk(tmp_path, build):
    text = probe(tmp_path, build, f"uretprobe:BIN:{WALK} {{ @[ustack] = count(); }}", WORDS)
    t = tree(build)
    entries = parse_stack_entries(text)
    assert len(entries) == 1 and entries[0].count == A, text
    expected = [(DEMANGLED[RUN], t.ret(RUN, WALK)), (DEMANGLED[MAIN], t.ret(MAIN, RUN))]
    assert not frame_problems(entries[0].frames, expected, MAIN_TAIL), \
        f"{frame_problems(entries[0].frames, expected, MAIN_TAIL)}\n{text}"


# --------------------------------------------------------------------------------------------
# ustack as a value: print(), printf("%s"), a map value, JSON


def block(build: str, path: str, indent: str, limit: int) -> str:
    """The text of a stack of `path` cut to `limit` frames, as a value prints it: a newline, then
    each frame on its own line behind `indent`. Offsets come from objdump (one each here)."""
    lines = []
    for name, offsets in expected_frames(build, path, MAIN)[:limit]:
        assert len(offsets) == 1, (name, offsets)
        lines.append(f"{indent}{name}+{next(iter(offsets))}\n")
    return "\n" + "".join(lines)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("form", ["print(ustack(3))", 'printf("%s\\n", ustack(3))'])
def test_ustack_print_and_printf(tmp_path, build, form):
    # bpftrace: "\n" + 8-space frames, then print's/printf's own "\n": a blank line after each.
    text = body(probe(tmp_path, build, LEAF_PROBE + " { " + form + "; }", [1, 1, 0]))
    expected = block(build, "a", " " * 8, 3) + "\n" + block(build, "b", " " * 8, 3) + "\n"
    assert text.startswith(expected), f"expected to start with:\n{expected!r}\ngot:\n{text!r}"
    assert text[len(expected):].strip() == "", text


@pytest.mark.parametrize("build", BUILDS)
def test_ustack_printf_mixed(tmp_path, build):
    # The string of ustack (8 spaces) and of ustack(perf) (tab) inside other text.
    text = body(probe(tmp_path, build,
                      LEAF_PROBE + ' { printf("<%s>|<%s>\\n", ustack(2), ustack(perf, 2)); }',
                      [1, 0, 0]))
    match = re.match(r"<(\n(?:[^\n]*\n)*)>\|<(\n(?:[^\n]*\n)*)>\n", text)
    assert match, text
    assert match.group(1) == block(build, "a", " " * 8, 2), text
    perf = match.group(2).splitlines()[1:]
    assert len(perf) == 2, text
    check_perf_frames(build, Entry("", [], perf, "", 1))


@pytest.mark.parametrize("build", BUILDS)
def test_ustack_map_value(tmp_path, build):
    # "@s: " (trailing space), then the value's "\n" + 8-space frames, then one "\n".
    text = probe(tmp_path, build, LEAF_PROBE + " { @s = ustack(3); }", [0, 0, 1])
    expected = "@s: " + block(build, "c", " " * 8, 3) + "\n"
    assert expected in text, f"expected:\n{expected!r}\ngot:\n{text!r}"


@pytest.mark.parametrize("build", BUILDS)
def test_ustack_json(tmp_path, build):
    text = probe(tmp_path, build, LEAF_PROBE + " { @[ustack(3)] = count(); }", WORDS,
                 extra=["-f", "json"])
    maps = [json.loads(line) for line in text.splitlines()
            if line.startswith("{") and json.loads(line).get("type") == "map"]
    assert len(maps) == 1, text
    data = maps[0]["data"]["@"]
    expected = {block(build, p, "    ", 3): n for p, n in COUNTS.items()}
    assert data == expected, f"{data}\n!=\n{expected}"


@pytest.mark.parametrize("build", BUILDS)
def test_ustack_json_print(tmp_path, build):
    text = probe(tmp_path, build, LEAF_PROBE + " { print(ustack(3)); }", [1, 0, 0],
                 extra=["-f", "json"])
    values = [json.loads(line) for line in text.splitlines()
              if line.startswith("{") and json.loads(line).get("type") == "value"]
    assert values == [{"type": "value", "data": block(build, "a", " " * 8, 3)}], text


def test_ustack_in_begin():
    # bpftrace shows its own process's stack in BEGIN; dprobe has no target frame there. Only
    # accepted and printed as one stack entry: whatever frames it holds.
    result = run_dprobe(["-e", "BEGIN { @[ustack] = count(); exit(); }"], timeout=30)
    assert result.returncode == 0, result.describe()
    entries = parse_stack_entries(result.stdout)
    assert len(entries) == 1 and entries[0].count == 1, result.describe()


# --------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("arg", ["", "(1)", "(127)", "(perf)", "(perf, 2)", "(bpftrace)",
                                 "(bpftrace, 4)"])
def test_ustack_good_arguments_compile(arg):
    # The valid forms compile (dry run); also what makes the bad-argument test below able to fail
    # for the right reason (a dprobe without ustack rejects every form).
    script = f"uprobe:{target('calltree_fp')}:{LEAF} {{ @[ustack{arg}] = count(); }}"
    result = run_dprobe(["-d", "-e", script], timeout=30)
    assert result.returncode == 0, result.describe()


@pytest.mark.parametrize("arg", list(BPFTRACE_ERRORS), ids=lambda a: a.replace('"', "q"))
def test_ustack_bad_arguments(arg):
    binary = target("calltree_fp")
    good = run_dprobe(["-d", "-e", f"uprobe:{binary}:{LEAF} {{ @[ustack(3)] = count(); }}"],
                      timeout=30)
    assert good.returncode == 0, "ustack(3) itself is refused\n" + good.describe()
    script = f"uprobe:{binary}:{LEAF} {{ @[ustack({arg})] = count(); }}"
    result = run_dprobe(["-e", script, "-c", f"{binary} 1 1 1"], timeout=30)
    why = "\nbpftrace 0.17 says:\n" + BPFTRACE_ERRORS[arg]
    assert result.returncode == 1, result.describe() + why
    assert "calltree:" not in result.stdout, "the target ran\n" + result.describe()
    first = result.stderr.splitlines()[0] if result.stderr else ""
    assert re.match(r"stdin:1:\d+", first), result.describe() + why
    assert "stack" in first.lower() or "identifier" in first.lower(), result.describe() + why


# --------------------------------------------------------------------------------------------
# Stacks in processes that come and go: fork children, libraries loaded later


def stack_entries_by_key(text: str) -> dict[str, list[tuple[list[str], int]]]:
    """`@[KEY, \n    frame\n ...\n]: N` entries of a map keyed by (int, ustack): KEY -> [(frames,
    count)]."""
    out: dict[str, list[tuple[list[str], int]]] = {}
    for match in re.finditer(r"^@\[(\d+), \n((?:    .*\n)+)\]: (\d+)$", text, re.M):
        frames = [line.strip() for line in match.group(2).splitlines()]
        out.setdefault(match.group(1), []).append((frames, int(match.group(3))))
    return out


@pytest.mark.parametrize("mechanism", ["jump", "int3-boost", "int3-ptrace"])
def test_ustack_fork_children(mechanism):
    # forkmany 2 4 3: two threads call work() 3 times each and fork 4 children in all, which
    # call work() 3 times each and exit. Every process's stacks are named, the children's too
    # (short-lived: named from their parent's mappings, which they inherited).
    forkmany = target("forkmany")
    result = run_dprobe(["--mechanism", mechanism, "-e",
                         f"uprobe:{forkmany}:work {{ @[pid, ustack(2)] = count(); }}",
                         "-c", f"{forkmany} 2 4 3"])
    assert result.returncode == 0, result.stderr
    entries = stack_entries_by_key(result.stdout)
    assert len(entries) == 5, result.stdout
    counts = sorted(sum(n for _, n in stacks) for stacks in entries.values())
    assert counts == [3, 3, 3, 3, 6], result.stdout
    for stacks in entries.values():
        for frames, _ in stacks:
            assert len(frames) == 2 and frames[0] == "work+0", result.stdout
            # The parent calls work() from its threads, a child from child_body().
            assert re.fullmatch(r"(?:run_thread|child_body)\+\d+", frames[1]), result.stdout


def test_ustack_in_a_library_loaded_later():
    # plugin_host loads libplugin.so twice (with dlclose between): plugin_entry is called once by
    # the library's constructor and 3 times from main per load. The library is not mapped when
    # dprobe arms: its unwind rows come at the loader's stop, and its frames keep their names
    # after it is unloaded.
    host, lib = target("plugin_host"), target("libplugin.so")
    result = run_dprobe(["-e", f"uprobe:{lib}:plugin_entry {{ @[ustack(2)] = count(); }}",
                         "-c", f"{host} {lib} 3"])
    assert result.returncode == 0, result.stderr
    entries = [(re.findall(r"^    (\S+)$", m.group(1), re.M), int(m.group(2)))
               for m in re.finditer(r"^@\[\n((?:    .*\n)+)\]: (\d+)$", result.stdout, re.M)]
    assert len(entries) == 2, result.stdout
    (init_frames, init_count), (call_frames, call_count) = entries
    assert init_count == 2 and call_count == 6, result.stdout
    assert init_frames[0] == "plugin_entry+0" and re.fullmatch(r"plugin_init\+\d+", init_frames[1])
    assert call_frames[0] == "plugin_entry+0" and re.fullmatch(r"call_entry\+\d+", call_frames[1])


def test_ustack_static_executable():
    # A static executable has .eh_frame but often no .eh_frame_hdr: its FDEs are found from its
    # function symbols, so the probe at work+0 still shows its caller, main.
    loop_static = target("loop_static")
    result = run_dprobe(["-e", f"uprobe:{loop_static}:work {{ @[ustack(2)] = count(); }}",
                         "-c", f"{loop_static} 5"])
    assert result.returncode == 0, result.stderr
    assert re.search(r"^@\[\n    work\+0\n    main\+\d+\n\]: 5$", result.stdout, re.M), result.stdout
