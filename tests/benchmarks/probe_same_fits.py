"""Issue 35: fits.json written through LawEntry (laws/entries.py) and read back as LawEntries gives
the same files, terminal and report as the dict-built version before it.

Run: git archive 1f38f6c | tar -x -C OLD_TREE     (the last commit that built fits.json from dicts)
     .venv/bin/python tests/benchmarks/probe_same_fits.py OUT OLD_TREE     (~3 min a side, 2 cores)

OUT: a grid's output (results and the fits.json that names its candidate forms), e.g.
`python -m raysweep.grid --sweep simulate --out OUT`. Copies OUT twice, then in each copy runs
`python -m raysweep.fit COPY --verbose` (refit: fits.json, boundary.json, the tables and the
summary) and `python -m raysweep.report COPY` (report.md, report.html, every figure), once with
OLD_TREE's raysweep first on the path and once with this tree's; then compares every file and both
outputs byte for byte, after masking what must differ (the copy's path, the time the report was
built and fits.json's "created"). Prints each difference, or "same"; exits 1 on a difference.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MASKS = [(re.compile(rb'"created": "[^"]*"'), b'"created": ""'),
         (re.compile(rb"Built \d{4}-\d\d-\d\d \d\d:\d\d UTC"), b"Built"),
         (re.compile(rb"fits.json created \S+ with"), b"fits.json created with")]


def run_side(out: Path, copy: Path, pythonpath: str | None) -> None:
    shutil.copytree(out, copy)
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    for command, log in ((["raysweep.fit", str(copy), "--verbose"], "fit_stdout.txt"),
                         (["raysweep.report", str(copy)], "report_stdout.txt")):
        done = subprocess.run([sys.executable, "-m", *command], env=env, capture_output=True,
                              check=True)
        (copy / log).write_bytes(done.stdout)


def masked(path: Path, copy: Path) -> bytes:
    text = path.read_bytes().replace(str(copy).encode(), b"OUT")
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def main() -> int:
    out, old = Path(sys.argv[1]), sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        before, after = Path(tmp, "before"), Path(tmp, "after")
        run_side(out, before, old)
        run_side(out, after, None)
        files = sorted({p.relative_to(before) for p in before.rglob("*") if p.is_file()}
                       | {p.relative_to(after) for p in after.rglob("*") if p.is_file()})
        files = [f for f in files if f.parts[0] not in ("results", "tune")]
        differ = [f for f in files if not (before / f).exists() or not (after / f).exists()
                  or masked(before / f, before) != masked(after / f, after)]
        for f in differ:
            print(f"differs: {f}")
        print(f"compared {len(files)} files: " + ("same" if not differ else f"{len(differ)} differ"))
        return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
