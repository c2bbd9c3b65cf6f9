"""Probes on every instruction kind the relocator must fix up (tests/targets/reloc.S).

Each label in reloc_kinds is probed by offset (uprobe:reloc:reloc_kinds+OFF, OFF from nm). The
program's stdout must be byte-identical to an unprobed run (every call prints its checksum, so
a mis-relocated instruction shows), and the hit count must equal how often the instruction
executes for the inputs x = (i * 7) % 23 that reloc's main uses.
"""

from __future__ import annotations

import pytest

from conftest import run, run_dprobe, symbols, target

CALLS = 46  # two rounds of the 23 inputs


def inputs(n: int = CALLS) -> list[int]:
    return [(i * 7) % 23 for i in range(n)]


# label -> executions of that instruction for one call reloc_kinds(x); see the table in reloc.S
EXECUTIONS = {
    "reloc_push": lambda x: 1,
    "reloc_rip_load": lambda x: 1,
    "reloc_rip_store": lambda x: 1,
    "reloc_rip_cmp_imm": lambda x: 1,
    "reloc_rip_lea": lambda x: 1,
    "reloc_call": lambda x: 1,
    "reloc_call_ind": lambda x: 1,
    "reloc_jcc8": lambda x: 1,
    "reloc_jcc8_taken": lambda x: x & 1,
    "reloc_jcc32": lambda x: 1,
    "reloc_jcc32_taken": lambda x: 1 if x & 2 == 0 else 0,
    "reloc_jmp8": lambda x: 1,
    "reloc_jmp32": lambda x: 1,
    "reloc_loop": lambda x: (x & 3) + 1,
    "reloc_jrcxz": lambda x: 1,
    "reloc_ret": lambda x: 1,
}


def expected_hits(label: str) -> int:
    return sum(EXECUTIONS[label](x) for x in inputs())


def probe_spec(label: str) -> str:
    table = symbols(target("reloc"))
    if label not in table:
        pytest.fail(f"{target('reloc')} has no symbol {label} (nm)")
    offset = table[label] - table["reloc_kinds"]
    return "reloc_kinds" if offset == 0 else f"reloc_kinds+{offset}"


@pytest.fixture(scope="module")
def unprobed() -> str:
    result = run([target("reloc"), str(CALLS)], timeout=20)
    assert result.returncode == 0, result.describe()
    assert result.stdout.count("\n") == CALLS + 1
    return result.stdout


def test_every_branch_goes_both_ways():
    # Otherwise a relocated branch whose target is wrong might never be caught.
    xs = inputs()
    assert {x & 1 for x in xs} == {0, 1}
    assert {x & 2 for x in xs} == {0, 2}
    assert {x & 4 for x in xs} == {0, 4}
    assert {x & 3 for x in xs} == {0, 1, 2, 3}


@pytest.mark.parametrize("label", sorted(EXECUTIONS))
def test_relocation_kind(label, unprobed, tmp_path):
    binary = target("reloc")
    out = tmp_path / "out.txt"
    result = run_dprobe(["-o", out, "-e", f"uprobe:{binary}:{probe_spec(label)} {{ @hits = count(); }}",
                         "-c", f"{binary} {CALLS}"], timeout=60)
    assert result.returncode == 0, result.describe()
    assert result.stdout == unprobed, "probed run printed something else\n" + result.describe()
    assert result.stderr == "", result.describe()
    assert out.read_text() == f"Attaching 1 probe...\n\n\n@hits: {expected_hits(label)}\n"


def test_all_kinds_at_once(unprobed, tmp_path):
    """Every label probed in one session (neighbouring probes, one after another)."""
    binary = target("reloc")
    out = tmp_path / "out.txt"
    labels = sorted(EXECUTIONS)
    script = " ".join(f"uprobe:{binary}:{probe_spec(label)} {{ @{label} = count(); }}"
                      for label in labels)
    result = run_dprobe(["-o", out, "-e", script, "-c", f"{binary} {CALLS}"], timeout=60)
    assert result.returncode == 0, result.describe()
    assert result.stdout == unprobed, result.describe()
    assert result.stderr == "", result.describe()
    maps = "".join(f"@{label}: {expected_hits(label)}\n" for label in labels)
    assert out.read_text() == f"Attaching {len(labels)} probes...\n\n\n{maps}"


def test_callee_of_relocated_calls(unprobed, tmp_path):
    """reloc_helper is reached through the rel32 call and the RIP-relative indirect call."""
    binary = target("reloc")
    out = tmp_path / "out.txt"
    result = run_dprobe(["-o", out, "-e", f"uprobe:{binary}:reloc_helper {{ @calls = count(); }}",
                         "-c", f"{binary} {CALLS}"], timeout=60)
    assert result.returncode == 0, result.describe()
    assert result.stdout == unprobed, result.describe()
    assert out.read_text() == f"Attaching 1 probe...\n\n\n@calls: {2 * CALLS}\n"


def test_relocated_arguments(unprobed, tmp_path):
    """arg0 at the entry of reloc_kinds is the x main passed, in call order."""
    binary = target("reloc")
    out = tmp_path / "out.txt"
    result = run_dprobe(["-o", out, "-e", f"uprobe:{binary}:reloc_kinds {{ printf(\"%d\\n\", arg0); }}",
                         "-c", f"{binary} {CALLS}"], timeout=60)
    assert result.returncode == 0, result.describe()
    assert result.stdout == unprobed, result.describe()
    lines = "".join(f"{x}\n" for x in inputs())
    assert out.read_text() == f"Attaching 1 probe...\n{lines}\n\n"
