"""Runs every directive file in tests/e2e/cases/ (format: README.md here)."""

from __future__ import annotations

from pathlib import Path

import pytest

import caselib
from conftest import E2E_DIR, dprobe_path, run, targets_dir

CASES_DIR = E2E_DIR / "cases"
CASE_FILES = sorted(CASES_DIR.glob("*.test"))


def test_cases_exist():
    # A glob that silently matched nothing would make the parametrised test below vanish.
    assert len(CASE_FILES) >= 30, f"only {len(CASE_FILES)} case files in {CASES_DIR}"


@pytest.mark.parametrize("case_file", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_case(case_file: Path, tmp_path: Path):
    case = caselib.parse_case(case_file)
    values = {
        "TARGETS": str(targets_dir()),
        "OUT": str(tmp_path / "out.txt"),
        "TMP": str(tmp_path),
        "CASES": str(CASES_DIR),
    }
    for section in case.files:
        (tmp_path / section.arg).write_text(caselib.substitute(section.body, values))
    words = [caselib.substitute(w, values) for w in case.run_words]
    result = run([Path(dprobe_path()).resolve(), *words], timeout=case.timeout,
                 cwd=case.cwd(str(Path(values["TARGETS"]).resolve())))

    problems = []
    if result.returncode != case.exit_status:
        problems.append(f"exit status {result.returncode}, expected {case.exit_status}")
    streams = {"stdout": result.stdout, "stderr": result.stderr}
    if case.uses_out:
        out = Path(values["OUT"])
        if not out.exists():
            problems.append(f"output file {out} was not written")
        streams["output"] = out.read_text() if out.exists() else ""
    for name, actual in streams.items():
        # A stream without a section must be empty: nothing goes unchecked.
        section = case.streams.get(name, caselib.Section(name, "exact", ""))
        problems += caselib.check_stream(name, section, actual, values, words, case.normalizers)
    assert not problems, "\n".join(problems) + "\n\n" + result.describe()
