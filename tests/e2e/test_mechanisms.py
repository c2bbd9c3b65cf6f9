"""The three probe mechanisms (jump, int3-boost, int3-ptrace): which one each site gets by
default and why (-v), `--mechanism` forcing one, exact counts with hits handled inside the
target, fault-safe str() under a jump probe, and printf events through the ring buffer."""

from __future__ import annotations

import re

import pytest

from conftest import error_line, run, run_dprobe, target

# -v prints one line per probe site; these pull out its mechanism and the parenthesised reason.
MECHANISM = re.compile(r"mechanism (jump|int3-boost|int3-ptrace) \((.*)\)$")
LOST = re.compile(r"dprobe: (\d+) printf events lost \(ring buffer full\)")


def count_output(n: int, name: str = "calls", probes: int = 1) -> str:
    plural = "probe" if probes == 1 else "probes"
    return f"Attaching {probes} {plural}...\n\n\n@{name}: {n}\n"


def site_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "mechanism" in line]


def mechanism_of(line: str) -> tuple[str, str]:
    match = MECHANISM.search(line)
    assert match, f"no 'mechanism NAME (REASON)' at the end of {line!r}"
    return match.group(1), match.group(2)


def unprobed_stdout(args: list) -> str:
    result = run(args, timeout=60)
    assert result.returncode == 0, result.describe()
    return result.stdout


def count_run(tmp_path, binary, function: str, command: list, mechanism: str | None,
              verbose: bool = False, timeout: float = 60):
    out = tmp_path / "out.txt"
    args = ["-o", out]
    if verbose:
        args.append("-v")
    if mechanism:
        args += ["--mechanism", mechanism]
    args += ["-e", f"uprobe:{binary}:{function} {{ @calls = count(); }}",
             "-c", " ".join(str(word) for word in command)]
    result = run_dprobe(args, timeout=timeout)
    return result, out.read_text() if out.exists() else ""


# --------------------------------------------------------------------------------------------
# 1. Exact counts with jump probes


COUNT_COMMANDS = {
    "loop_1e6": ("loop", ["1000000"], 1000000),
    "threads_4x250000": ("threads", ["4", "250000"], 1000000),
    "threads_4x1e6": ("threads", ["4", "1000000"], 4000000),
}


@pytest.mark.parametrize("name", list(COUNT_COMMANDS))
def test_jump_exact_count(tmp_path, name):
    """--mechanism jump: every call counted (hits run in the target, maps merged at exit), the
    target's output unchanged; -v says the site uses a jump."""
    program, words, calls = COUNT_COMMANDS[name]
    binary = target(program)
    expected_stdout = unprobed_stdout([binary, *words])
    result, output = count_run(tmp_path, binary, "work", [binary, *words], "jump", verbose=True)
    assert result.returncode == 0, result.describe()
    assert result.stdout == expected_stdout, result.describe()
    assert output == count_output(calls), output
    lines = site_lines(result.stderr)
    assert len(lines) == 1 and len(result.stderr.splitlines()) == 1, result.describe()
    assert mechanism_of(lines[0])[0] == "jump", result.describe()


@pytest.mark.parametrize("name", ["loop_1e6", "threads_4x250000"])
def test_default_mechanism_is_jump(tmp_path, name):
    """No --mechanism: work() (a normal function, no branch into its start) gets a jump, whose
    reason names the number of replaced bytes and their instructions, and counts exactly."""
    program, words, calls = COUNT_COMMANDS[name]
    binary = target(program)
    expected_stdout = unprobed_stdout([binary, *words])
    result, output = count_run(tmp_path, binary, "work", [binary, *words], None, verbose=True)
    assert result.returncode == 0, result.describe()
    assert result.stdout == expected_stdout, result.describe()
    assert output == count_output(calls), output
    lines = site_lines(result.stderr)
    assert len(lines) == 1, result.describe()
    mechanism, reason = mechanism_of(lines[0])
    assert mechanism == "jump", result.describe()
    match = re.fullmatch(r"replaces (\d+) bytes \((.+)\)", reason)
    assert match and int(match.group(1)) >= 5, f"jump reason {reason!r}"
    # work is `lea eax, [rdi+rdi*2+0x1]; ret` (4 + 1 bytes) at -O2: both are replaced.
    assert match.group(2).startswith("lea"), f"jump reason {reason!r}"


@pytest.mark.parametrize("mechanism", ["int3-boost", "int3-ptrace"])
def test_forced_int3_mechanisms_exact_count(tmp_path, mechanism):
    """--mechanism int3-boost / int3-ptrace on a site where a jump would fit: the forced one is
    used (-v says so) and counts exactly."""
    binary = target("threads")
    words = ["4", "5000"]
    expected_stdout = unprobed_stdout([binary, *words])
    result, output = count_run(tmp_path, binary, "work", [binary, *words], mechanism,
                               verbose=True, timeout=120)
    assert result.returncode == 0, result.describe()
    assert result.stdout == expected_stdout, result.describe()
    assert output == count_output(20000), output
    lines = site_lines(result.stderr)
    assert len(lines) == 1, result.describe()
    assert mechanism_of(lines[0])[0] == mechanism, result.describe()


# --------------------------------------------------------------------------------------------
# 2 and 6. int3-boost where a jump is refused, with the reason in -v


def test_tiny_defaults_to_int3_boost(tmp_path):
    """tiny_fn and tiny_next are 4 bytes each: a jump is refused because of the size (-v says
    so), int3-boost counts every call and tiny_next (right after tiny_fn) is not clobbered."""
    binary = target("tiny")
    n = 100000
    out = tmp_path / "out.txt"
    script = (f"uprobe:{binary}:tiny_fn {{ @fn = count(); }} "
              f"uprobe:{binary}:tiny_next {{ @next = count(); }}")
    result = run_dprobe(["-v", "-o", out, "-e", script, "-c", f"{binary} {n}"], timeout=120)
    assert result.returncode == 0, result.describe()
    assert result.stdout == unprobed_stdout([binary, str(n)]), result.describe()
    assert out.read_text() == f"Attaching 2 probes...\n\n\n@fn: {n}\n@next: {n}\n"
    lines = site_lines(result.stderr)
    assert len(lines) == 2 and len(result.stderr.splitlines()) == 2, result.describe()
    for line, function in zip(sorted(lines, key=lambda l: "tiny_next" in l),
                              ["tiny_fn", "tiny_next"]):
        assert function in line, result.describe()
        mechanism, reason = mechanism_of(line)
        assert mechanism == "int3-boost", line
        assert reason.startswith("jump refused: "), line
        assert reason.endswith("; int3 handled in the target"), line
        assert re.search(r"\b4 bytes\b", reason) and re.search(r"\b5\b", reason), \
            f"the refusal should name the size (4 bytes, 5 needed): {line!r}"


def test_branch_into_prologue_defaults_to_int3_boost(tmp_path):
    """spin_into's loop jumps back to spin_into+2: a jump is refused because of that branch (the
    reason names the branch and its target, site+2), int3-boost counts one hit per call (the loop
    re-enters past the probe) and the loop still runs its rounds."""
    binary = target("branch_in")
    n = 20000
    result, output = count_run(tmp_path, binary, "spin_into", [binary, n], None, verbose=True,
                               timeout=120)
    assert result.returncode == 0, result.describe()
    assert result.stdout == f"branch_in: {n} calls, {3 * n} rounds\n", result.describe()
    assert output == count_output(n), output
    lines = site_lines(result.stderr)
    assert len(lines) == 1 and len(result.stderr.splitlines()) == 1, result.describe()
    mechanism, reason = mechanism_of(lines[0])
    assert mechanism == "int3-boost", lines[0]
    assert reason.startswith("jump refused: ") and "branch" in reason, lines[0]
    assert reason.endswith("; int3 handled in the target"), lines[0]
    site = re.search(r"address 0x([0-9a-f]+)", lines[0])
    assert site, f"no site address in {lines[0]!r}"
    loop_target = int(site.group(1), 16) + 2
    assert f"{loop_target:#x}" in reason, \
        f"the refusal should name the branch target {loop_target:#x}: {lines[0]!r}"


@pytest.mark.parametrize("program,function", [("tiny", "tiny_fn"), ("branch_in", "spin_into")])
def test_forced_jump_refused(program, function):
    """--mechanism jump where it is not safe: one error line with the reason, exit 1, and the
    command never runs (its output would appear on stdout)."""
    binary = target(program)
    result = run_dprobe(["--mechanism", "jump", "-e",
                         f"uprobe:{binary}:{function} {{ @c = count(); }}", "-c", f"{binary} 10"])
    line = error_line(result, function, "jump refused")
    assert result.stdout == "", result.describe()
    assert ("4 bytes" in line) if program == "tiny" else ("branch" in line), line


@pytest.mark.parametrize("mechanism", ["int3-boost", "int3-ptrace"])
def test_branch_into_prologue_forced_int3(tmp_path, mechanism):
    """Both int3 mechanisms are safe on spin_into and count exactly."""
    binary = target("branch_in")
    n = 5000
    result, output = count_run(tmp_path, binary, "spin_into", [binary, n], mechanism,
                               timeout=120)
    assert result.returncode == 0, result.describe()
    assert result.stdout == f"branch_in: {n} calls, {3 * n} rounds\n", result.describe()
    assert result.stderr == "", result.describe()
    assert output == count_output(n), output


# --------------------------------------------------------------------------------------------
# 7. str() of unreadable pointers under a jump probe


STR_EXPECTED = "Attaching 1 probe...\n[hello]\n[]\n[]\n[]\n[]\n[bye]\n\n\n"


@pytest.mark.parametrize("mechanism", ["jump", "int3-boost"])
def test_str_bad_pointers_in_target(tmp_path, mechanism):
    """str(arg0) of NULL, 0x10, an unmapped page and a string running into an unmapped page,
    read inside the target: "" for each (as bpftrace prints, cases/str_bad_pointer.test), the
    good strings around them intact, and the target finishes normally."""
    binary = target("badptr")
    out = tmp_path / "out.txt"
    result = run_dprobe(["-v", "--mechanism", mechanism, "-o", out, "-e",
                         f"uprobe:{binary}:show {{ printf(\"[%s]\\n\", str(arg0)); }}",
                         "-c", binary])
    assert result.returncode == 0, result.describe()
    assert result.stdout == "badptr: 6 calls, sum 283\n", result.describe()
    assert out.read_text() == STR_EXPECTED
    lines = site_lines(result.stderr)
    assert len(lines) == 1 and len(result.stderr.splitlines()) == 1, result.describe()
    assert mechanism_of(lines[0])[0] == mechanism, result.describe()


# --------------------------------------------------------------------------------------------
# 9. printf events through the ring buffer


def test_printf_every_event_arrives_or_is_reported_lost(tmp_path):
    """printf of arg0 on every one of 10^6 calls with a jump probe: the lines that arrive are
    0..N-1 in order with none missing, except that dropped events (ring buffer full) are
    allowed when dprobe reports their number: lines + lost == N."""
    binary = target("loop")
    n = 1000000
    out = tmp_path / "out.txt"
    result = run_dprobe(["--mechanism", "jump", "-o", out, "-e",
                         f"uprobe:{binary}:work {{ printf(\"%d\\n\", arg0); }}",
                         "-c", f"{binary} {n}"], timeout=120)
    assert result.returncode == 0, result.describe()
    assert result.stdout == unprobed_stdout([binary, str(n)]), result.describe()
    lost = 0
    for line in result.stderr.splitlines():
        match = LOST.fullmatch(line)
        assert match, f"unexpected stderr line {line!r}\n" + result.describe()
        lost += int(match.group(1))
    text = out.read_text()
    assert text.startswith("Attaching 1 probe...\n"), text[:200]
    assert text.endswith("\n\n\n"), text[-200:]
    body = text[len("Attaching 1 probe...\n"):-2].splitlines()
    assert all(re.fullmatch(r"\d+", line) for line in body), \
        [line for line in body if not re.fullmatch(r"\d+", line)][:5]
    values = [int(line) for line in body]
    assert len(values) + lost == n, f"{len(values)} lines + {lost} reported lost != {n}"
    # One thread: events arrive in call order, each value at most once.
    assert all(a < b for a, b in zip(values, values[1:])), "events out of order or repeated"
    if lost == 0:
        assert values == list(range(n))
