#!/usr/bin/python3
"""Writes the seed corpus of the lang fuzzer: every script of tests/e2e/cases/*.test (the
program after -e, and each `--- file NAME.bt` section), one file per script.

    make_seeds.py CASES_DIR OUT_DIR
"""

import shlex
import sys
from pathlib import Path


def scripts_of(text: str):
    lines = text.splitlines(keepends=True)
    for line in lines:
        if line.startswith("RUN:"):
            try:
                words = shlex.split(line[4:])
            except ValueError:
                continue
            for i, word in enumerate(words[:-1]):
                if word == "-e":
                    yield words[i + 1]
    body, in_script = [], False
    for line in lines:
        if line.startswith("--- "):
            if in_script:
                yield "".join(body)
            parts = line.split()
            in_script = len(parts) >= 3 and parts[1] == "file" and parts[2].endswith(".bt")
            body = []
        elif in_script:
            body.append(line)
    if in_script:
        yield "".join(body)


def main() -> int:
    cases, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for case in sorted(cases.glob("*.test")):
        for n, script in enumerate(scripts_of(case.read_text())):
            (out / f"{case.stem}.{n}.bt").write_text(script)
            count += 1
    print(f"{count} seed scripts in {out}")
    return 0 if count else 1


if __name__ == "__main__":
    sys.exit(main())
