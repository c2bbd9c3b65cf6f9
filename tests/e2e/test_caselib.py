"""The case-file reader and comparators themselves (no dprobe needed): a harness that cannot
fail would make every case pass."""

from __future__ import annotations

from pathlib import Path

import pytest

import caselib

VALUES = {"TARGETS": "/t", "OUT": "/tmp/o", "TMP": "/tmp", "CASES": "/c"}


def section(mode: str, body: str) -> caselib.Section:
    return caselib.Section("stderr", mode, body)


def check(mode: str, body: str, actual: str, words=("-e", "BEGIN { @x = ; }")) -> list[str]:
    return caselib.check_stream("stderr", section(mode, body), actual, VALUES, list(words), [])


def test_exact_compares_bytes():
    assert check("exact", "a\n", "a\n") == []
    assert check("exact", "a\n", "a\n\n") != []
    assert check("exact", "${TARGETS}/loop\n", "/t/loop\n") == []


def test_error_mode_wants_one_prefixed_line_with_every_phrase():
    good = "dprobe: error: /t/loop: no function 'wrk' (did you mean 'work'?)\n"
    body = "${TARGETS}/loop: no function 'wrk'\n(did you mean 'work'?)\n"
    assert check("error", body, good) == []
    assert check("error", body, good + "second line\n") != []
    assert check("error", body, good.replace("dprobe: error: ", "error: ")) != []
    assert check("error", body, good.replace("wrk", "xyz")) != []
    assert check("error", "", "") != []


def test_diagnostic_mode_checks_location_source_line_and_caret():
    good = "stdin:1:14: error: syntax error, unexpected ;\nBEGIN { @x = ; }\n             ^\n"
    assert check("diagnostic", "stdin:1:14:", good) == []
    assert check("diagnostic", "stdin:1:14: unexpected", good) == []
    assert check("diagnostic", "stdin:1:14: coutn", good) != []
    assert check("diagnostic", "stdin:1:13:", good) != []
    assert check("diagnostic", "stdin:1:14:", good.replace("             ^", "            ^")) != []
    assert check("diagnostic", "stdin:1:14:", good.replace("BEGIN { @x = ; }\n", "")) != []
    assert check("diagnostic", "stdin:1:14:", "stdin:1:14: error: \n" + good.split("\n", 1)[1]) != []
    assert check("diagnostic", "stdin:1:14:", good.replace("^", "^~~")) == []


def test_regex_mode_escapes_substituted_paths():
    assert check("regex", r"${TARGETS}\d\n", "/t7\n") == []
    assert check("regex", r"${TARGETS}\d\n", "/t7\nmore\n") != []


def test_map_ties_only_reorders_equal_values_of_one_map():
    text = "@[2]: 333\n@[1]: 333\n@[0]: 334\n"
    assert caselib.normalize_map_ties(text) == "@[1]: 333\n@[2]: 333\n@[0]: 334\n"
    # Different values keep their order: sorting by value is dprobe's job, not the harness's.
    assert caselib.normalize_map_ties("@[0]: 334\n@[1]: 333\n") == "@[0]: 334\n@[1]: 333\n"
    assert caselib.normalize_map_ties("@a: 1\n@b: 1\n") == "@a: 1\n@b: 1\n"


def test_parse_rejects_unknown_directives(tmp_path: Path):
    bad = tmp_path / "bad.test"
    bad.write_text("RUN: -e 'BEGIN {}'\nEXPECT-FROM: hand: x\nEXPCT: 1\n")
    with pytest.raises(caselib.CaseError):
        caselib.parse_case(bad)


def test_parse_sections_keep_blank_lines(tmp_path: Path):
    case_file = tmp_path / "ok.test"
    case_file.write_text("# c\nRUN: -o ${OUT} -e 'x'\nEXPECT-FROM: bpftrace\n"
                         "--- output\nAttaching 1 probe...\n\n\n@c: 1\n--- stdout\nhi\n")
    case = caselib.parse_case(case_file)
    assert case.streams["output"].body == "Attaching 1 probe...\n\n\n@c: 1\n"
    assert case.streams["stdout"].body == "hi\n"
    assert case.render() == case_file.read_text()


def test_bpftrace_words_drop_the_output_file_and_dprobe_only_options():
    import regen_expected
    words = ["-o", "${OUT}", "--mechanism", "int3-ptrace", "-e", "BEGIN { exit(); }",
             "--mechanism=jump", "-c", "x -o y"]
    assert regen_expected.bpftrace_words(words) == ["-e", "BEGIN { exit(); }", "-c", "x -o y"]
    # -o with another file is bpftrace's too, and stays.
    assert regen_expected.bpftrace_words(["-o", "f", "-e", "p"]) == ["-o", "f", "-e", "p"]
