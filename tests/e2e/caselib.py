"""Reader for the directive files in tests/e2e/cases/*.test (format: see tests/e2e/README.md).

Used by test_cases.py (runs dprobe and compares) and regen_expected.py (fills expectations
from bpftrace). Pure Python, no pytest import, so the regeneration script can use it too.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

SECTION_RE = re.compile(r"^--- (file|output|stdout|stderr)(?: +(\S+))?\s*$")
STREAM_MODES = {"exact", "contains", "regex", "error", "diagnostic"}
DIRECTIVES = {"RUN", "EXPECT-FROM", "TIMEOUT", "EXIT", "NORMALIZE", "CWD"}
TOKEN_RE = re.compile(r"\$\{(TARGETS|OUT|TMP|CASES)\}")


class CaseError(Exception):
    pass


@dataclass
class Section:
    kind: str  # file | output | stdout | stderr
    arg: str  # file name for `file`, mode for streams
    body: str


@dataclass
class Case:
    path: Path
    header: list[str]  # lines before the first section, verbatim (comments, directives)
    directives: dict[str, str]
    files: list[Section] = field(default_factory=list)
    streams: dict[str, Section] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def run_words(self) -> list[str]:
        return shlex.split(self.directives["RUN"])

    @property
    def timeout(self) -> float:
        return float(self.directives.get("TIMEOUT", "60"))

    def cwd(self, targets: str) -> str | None:
        """`CWD: TARGETS`: dprobe (and bpftrace) run in the targets directory, so the case can
        name targets as ./NAME and print names (`probe`) that do not depend on the build path."""
        return targets if self.directives.get("CWD") == "TARGETS" else None

    @property
    def exit_status(self) -> int:
        return int(self.directives.get("EXIT", "0"))

    @property
    def normalizers(self) -> list[str]:
        value = self.directives.get("NORMALIZE", "")
        return [n.strip() for n in value.split(",") if n.strip()]

    @property
    def uses_out(self) -> bool:
        return any("${OUT}" in w for w in self.run_words)

    def render(self) -> str:
        text = "".join(line + "\n" for line in self.header)
        for section in [*self.files, *self.streams.values()]:
            marker = f"--- {section.kind}"
            if section.arg and not (section.kind != "file" and section.arg == "exact"):
                marker += f" {section.arg}"
            text += marker + "\n" + section.body
        return text


def parse_case(path: Path) -> Case:
    lines = path.read_text().split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    header: list[str] = []
    directives: dict[str, str] = {}
    index = 0
    while index < len(lines) and not SECTION_RE.match(lines[index]):
        line = lines[index]
        header.append(line)
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            key, sep, value = stripped.partition(":")
            if not sep or key not in DIRECTIVES:
                raise CaseError(f"{path}:{index + 1}: unknown directive line {line!r}")
            if key in directives:
                raise CaseError(f"{path}:{index + 1}: {key} given twice")
            directives[key] = value.strip()
        index += 1
    if "RUN" not in directives:
        raise CaseError(f"{path}: no RUN directive")
    source = directives.get("EXPECT-FROM", "")
    if not (source == "bpftrace" or source.startswith("hand")):
        raise CaseError(f"{path}: EXPECT-FROM must be `bpftrace` or `hand: <why>`")
    case = Case(path, header, directives)
    while index < len(lines):
        match = SECTION_RE.match(lines[index])
        kind, arg = match.group(1), match.group(2) or ""
        index += 1
        body_lines = []
        while index < len(lines) and not SECTION_RE.match(lines[index]):
            body_lines.append(lines[index])
            index += 1
        body = "".join(line + "\n" for line in body_lines)
        if kind == "file":
            if not arg or "/" in arg:
                raise CaseError(f"{path}: `--- file` needs a plain file name")
            case.files.append(Section(kind, arg, body))
            continue
        mode = arg or "exact"
        if mode not in STREAM_MODES:
            raise CaseError(f"{path}: unknown mode {mode!r} for `--- {kind}`")
        if kind in case.streams:
            raise CaseError(f"{path}: `--- {kind}` given twice")
        case.streams[kind] = Section(kind, mode, body)
    if case.uses_out and "output" not in case.streams:
        raise CaseError(f"{path}: RUN writes ${{OUT}} but there is no `--- output` section")
    if not case.uses_out and "output" in case.streams:
        raise CaseError(f"{path}: `--- output` given but RUN does not use ${{OUT}}")
    return case


def substitute(text: str, values: dict[str, str], escape=lambda s: s) -> str:
    return TOKEN_RE.sub(lambda m: escape(values[m.group(1)]), text)


# --------------------------------------------------------------------------------------------
# Normalisation (applied to expected and actual text alike)

MAP_LINE_RE = re.compile(r"^(@\w*)(\[.*\])?: (-?\d+)$")


def normalize_map_ties(text: str) -> str:
    """bpftrace prints a count map sorted by value, but entries with EQUAL values come out in
    BPF hash-table order, which nothing can reproduce. Sort each run of consecutive lines of the
    same map with the same value by their text, so only the tie order is ignored."""
    lines = text.split("\n")
    result: list[str] = []
    index = 0
    while index < len(lines):
        match = MAP_LINE_RE.match(lines[index])
        if not match:
            result.append(lines[index])
            index += 1
            continue
        end = index + 1
        while end < len(lines):
            other = MAP_LINE_RE.match(lines[end])
            if not other or other.group(1) != match.group(1) or other.group(3) != match.group(3):
                break
            end += 1
        result.extend(sorted(lines[index:end]))
        index = end
    return "\n".join(result)


def normalize(text: str, names: list[str]) -> str:
    for name in names:
        if name == "map-ties":
            text = normalize_map_ties(text)
        else:
            raise CaseError(f"unknown NORMALIZE rule {name!r}")
    return text


# --------------------------------------------------------------------------------------------
# Comparing one stream


def program_source(words: list[str], tmp: str, location_file: str) -> str | None:
    """The script text a diagnostic refers to: the -e argument for `stdin`, else the file."""
    if location_file == "stdin":
        for i, word in enumerate(words):
            if word == "-e" and i + 1 < len(words):
                return words[i + 1]
        return None
    path = Path(location_file)
    return path.read_text() if path.is_file() else None


def check_stream(name: str, section: Section, actual: str, values: dict[str, str],
                 run_words: list[str], normalizers: list[str]) -> list[str]:
    """Returns a list of problems (empty when the stream matches)."""
    mode = section.arg
    if mode == "exact":
        expected = normalize(substitute(section.body, values), normalizers)
        got = normalize(actual, normalizers)
        if got != expected:
            return [f"{name} differs\n--- expected {name} ---\n{expected}"
                    f"--- actual {name} ---\n{got}--- end ---"]
        return []
    if mode == "contains":
        problems = []
        for phrase in substitute(section.body, values).splitlines():
            if phrase and phrase not in actual:
                problems.append(f"{name} lacks {phrase!r}\n--- actual {name} ---\n{actual}")
        return problems
    if mode == "regex":
        pattern = substitute(section.body, values, re.escape)
        if not re.fullmatch(pattern, actual, re.M):
            return [f"{name} does not match\n--- pattern ---\n{pattern}--- actual {name} ---\n"
                    f"{actual}--- end ---"]
        return []
    if mode == "error":
        lines = actual.splitlines()
        if len(lines) != 1 or not actual.endswith("\n"):
            return [f"{name}: expected exactly one line\n--- actual {name} ---\n{actual}"]
        if not lines[0].startswith("dprobe: error: "):
            return [f"{name}: line does not start with 'dprobe: error: ': {lines[0]!r}"]
        return [f"{name}: error line lacks {phrase!r}: {lines[0]!r}"
                for phrase in substitute(section.body, values).splitlines()
                if phrase and phrase not in lines[0]]
    if mode == "diagnostic":
        spec = substitute(section.body, values).strip()
        match = re.fullmatch(r"(.+):(\d+):(\d+):(.*)", spec)
        if not match:
            raise CaseError(f"bad diagnostic spec {spec!r} (want FILE:LINE:COL: phrase)")
        where, line_no, col = match.group(1), int(match.group(2)), int(match.group(3))
        phrase = match.group(4).strip()
        source = program_source(run_words, values["TMP"], where)
        if source is None:
            raise CaseError(f"diagnostic refers to {where!r} but its text is unknown")
        source_line = source.split("\n")[line_no - 1]
        lines = actual.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        problems = []
        if len(lines) != 3:
            problems.append("expected exactly 3 lines")
        else:
            prefix = f"{where}:{line_no}:{col}: error: "
            if not lines[0].startswith(prefix) or len(lines[0]) == len(prefix):
                problems.append(f"line 1 should start with {prefix!r} and carry a message")
            if phrase and phrase not in lines[0]:
                problems.append(f"line 1 lacks {phrase!r}")
            if lines[1] != source_line:
                problems.append(f"line 2 should be the source line {source_line!r}")
            if not re.fullmatch(" " * (col - 1) + r"\^~*", lines[2]):
                problems.append(f"line 3 should be a caret under column {col}")
        if problems:
            return [f"{name}: " + "; ".join(problems) + f"\n--- actual {name} ---\n{actual}"]
        return []
    raise CaseError(f"unknown mode {mode!r}")
