"""Side by side with the reference: every case whose expectation says `EXPECT-FROM: bpftrace` is
run under bpftrace again here, and bpftrace must still print exactly what the case file holds.
This keeps anyone from "fixing" an expectation by hand to match dprobe.

Skipped (with the reason shown in pytest's summary) only where bpftrace cannot run at all:
not installed, or unable to run `BEGIN { exit(); }` (no root, no BPF in this kernel).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import caselib
import regen_expected
from conftest import targets_dir

CASES_DIR = Path(__file__).resolve().parent / "cases"
BPFTRACE_CASES = [p for p in sorted(CASES_DIR.glob("*.test"))
                  if caselib.parse_case(p).directives["EXPECT-FROM"] == "bpftrace"]


@pytest.fixture(scope="module")
def bpftrace_usable() -> None:
    if not shutil.which("bpftrace"):
        pytest.skip("bpftrace is not installed: expectations not re-checked against it")
    probe = subprocess.run(["bpftrace", "-e", "BEGIN { exit(); }"], capture_output=True,
                           text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"bpftrace cannot run here (exit {probe.returncode}): {probe.stderr[-300:]}")


def test_there_are_bpftrace_cases():
    assert len(BPFTRACE_CASES) >= 20


@pytest.mark.parametrize("case_file", BPFTRACE_CASES, ids=[p.stem for p in BPFTRACE_CASES])
def test_bpftrace_still_prints_the_expectation(case_file: Path, tmp_path: Path, bpftrace_usable):
    case = caselib.parse_case(case_file)
    try:
        expected = regen_expected.expected_for(case, targets_dir().resolve(), tmp_path)
    except caselib.CaseError as error:
        pytest.fail(str(error))
    for name in ("output", "stdout"):
        if name not in expected:
            continue
        held = case.streams.get(name, caselib.Section(name, "exact", "")).body
        assert caselib.normalize(held, case.normalizers) == \
            caselib.normalize(expected[name], case.normalizers), \
            f"{case.name}: `--- {name}` is not what bpftrace prints\n--- case ---\n{held}" \
            f"--- bpftrace ---\n{expected[name]}"
