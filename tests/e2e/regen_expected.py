#!/usr/bin/python3
"""Fills (or checks) the expected output of every case marked `EXPECT-FROM: bpftrace` by running
the same program under bpftrace on this machine (needs root and kernel uprobes).

    regen_expected.py TARGETS_DIR [--check] [CASE_NAME ...]

For a case `RUN: -o ${OUT} -e PROG -c CMD` this runs `bpftrace -e PROG -c CMD` (RUN without the
`-o ${OUT}` pair and without dprobe-only options such as `--mechanism M`, which choose how dprobe
places probes but not what it prints; the exact command is written into the case as a
`# bpftrace:` comment) and
`CMD` alone. The target's own stdout becomes the `--- stdout` section, and bpftrace's stdout
with that block of lines removed becomes `--- output`. bpftrace is run without -o on purpose:
bpftrace 0.17 writes the two blank lines before the maps to stdout even when -o is given, while
dprobe's contract puts all of its output into the -o file.

--check compares instead of writing (after the case's NORMALIZE rules) and exits 1 on a
difference. Noise this machine's bpftrace prints on stderr (RLIMIT_MEMLOCK, failing to remove
uprobe_events it never used) is ignored; anything else on its stderr is an error.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import caselib

CASES_DIR = Path(__file__).resolve().parent / "cases"
NOISE = ("RLIMIT_MEMLOCK", "uprobe_events", "failed to detach probe")


# dprobe options bpftrace does not have, with the number of words each takes after it. They
# change how probes are placed, never the output.
DPROBE_ONLY = {"--mechanism": 1}


def bpftrace_words(run_words: list[str]) -> list[str]:
    words = []
    skip = 0
    for i, word in enumerate(run_words):
        if skip:
            skip -= 1
            continue
        if word == "-o" and i + 1 < len(run_words) and run_words[i + 1] == "${OUT}":
            skip = 1
            continue
        if word in DPROBE_ONLY:
            skip = DPROBE_ONLY[word]
            continue
        if word.split("=", 1)[0] in DPROBE_ONLY:
            continue
        words.append(word)
    return words


def command_of(words: list[str]) -> list[str] | None:
    for i, word in enumerate(words):
        if word == "-c" and i + 1 < len(words):
            return words[i + 1].split()  # bpftrace splits -c on spaces, as dprobe does
    return None


def remove_block(stream: str, block: str) -> str | None:
    """stream with the line-aligned block removed once, or None if it is not there."""
    if not block:
        return stream
    start = 0
    while True:
        at = stream.find(block, start)
        if at < 0:
            return None
        if at == 0 or stream[at - 1] == "\n":
            return stream[:at] + stream[at + len(block):]
        start = at + 1


def expected_for(case: caselib.Case, targets: Path, tmp: Path) -> dict[str, str]:
    values = {"TARGETS": str(targets), "OUT": str(tmp / "out.txt"), "TMP": str(tmp),
              "CASES": str(CASES_DIR)}
    for section in case.files:
        (tmp / section.arg).write_text(caselib.substitute(section.body, values))
    words = [caselib.substitute(w, values) for w in bpftrace_words(case.run_words)]
    cwd = case.cwd(str(targets))
    proc = subprocess.run(["bpftrace", *words], capture_output=True, text=True,
                          timeout=case.timeout * 4, cwd=cwd)
    noise_free = [line for line in proc.stderr.splitlines() if not any(n in line for n in NOISE)]
    if noise_free:
        raise caselib.CaseError(f"{case.name}: bpftrace wrote to stderr:\n" +
                                "\n".join(noise_free))
    if proc.returncode != case.exit_status:
        raise caselib.CaseError(f"{case.name}: bpftrace exited {proc.returncode}, case says "
                                f"{case.exit_status}")
    streams = {}
    command = command_of(words)
    if command:
        alone = subprocess.run(command, capture_output=True, text=True, timeout=case.timeout,
                               cwd=cwd)
        if alone.returncode != 0:
            raise caselib.CaseError(f"{case.name}: {command} exited {alone.returncode}")
        rest = remove_block(proc.stdout, alone.stdout)
        if rest is None:
            raise caselib.CaseError(f"{case.name}: the target's stdout is not a block of "
                                    f"bpftrace's stdout:\n{proc.stdout}")
        if not case.uses_out:
            raise caselib.CaseError(f"{case.name}: -c cases must use -o ${{OUT}}")
        streams["output"] = rest
        streams["stdout"] = alone.stdout
    elif case.uses_out:
        streams["output"] = proc.stdout
        streams["stdout"] = ""
    else:
        streams["stdout"] = proc.stdout

    def tokens(text: str) -> str:
        return text.replace(str(tmp), "${TMP}").replace(str(targets), "${TARGETS}")
    streams = {k: tokens(v) for k, v in streams.items()}
    streams["bpftrace"] = "bpftrace " + " ".join(
        caselib.shlex.quote(w) for w in bpftrace_words(case.run_words))
    return streams


def update(case: caselib.Case, expected: dict[str, str]) -> str:
    header = [line for line in case.header if not line.startswith("# bpftrace:")]
    at = next(i for i, line in enumerate(header) if line.startswith("EXPECT-FROM:"))
    header.insert(at + 1, f"# bpftrace: {expected['bpftrace']}")
    case.header = header
    for name in ("output", "stdout"):
        if name in expected:
            if expected[name] or name == "output":
                case.streams[name] = caselib.Section(name, "exact", expected[name])
            else:
                case.streams.pop(name, None)  # absent stdout means "must be empty"
    ordered = {k: case.streams[k] for k in ("output", "stdout", "stderr") if k in case.streams}
    case.streams = ordered
    return case.render()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("targets", type=Path)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    if not shutil.which("bpftrace"):
        print("bpftrace is not installed", file=sys.stderr)
        return 1
    failed = 0
    for path in sorted(CASES_DIR.glob("*.test")):
        case = caselib.parse_case(path)
        if case.directives["EXPECT-FROM"] != "bpftrace":
            continue
        if args.names and case.name not in args.names:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            try:
                expected = expected_for(case, args.targets.resolve(), Path(tmp))
            except (caselib.CaseError, subprocess.TimeoutExpired) as error:
                print(f"FAIL {case.name}: {error}")
                failed += 1
                continue
        if args.check:
            problems = []
            for name in ("output", "stdout"):
                if name not in expected:
                    continue
                want = case.streams.get(name, caselib.Section(name, "exact", "")).body
                if caselib.normalize(want, case.normalizers) != \
                        caselib.normalize(expected[name], case.normalizers):
                    problems.append(f"{name}: case has\n{want}bpftrace gives\n{expected[name]}")
            print(("FAIL " if problems else "ok   ") + case.name)
            for problem in problems:
                print(problem)
            failed += bool(problems)
        else:
            path.write_text(update(case, expected))
            print(f"wrote {case.name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
