"""Issue 35: an OUT's boundary.json read as Slices gives the findings it gave before.

Run: PYTHONPATH=OLD_TREE .venv/bin/python tests/benchmarks/probe_same_findings.py OUT > old.txt
     .venv/bin/python tests/benchmarks/probe_same_findings.py OUT > new.txt
     .venv/bin/python tests/benchmarks/probe_same_findings.py OUT --rewrite > new2.txt
     diff old.txt new.txt; diff old.txt new2.txt     (seconds; no fitting)

Prints the findings of OUT's fits.json, boundary.json and adaptive.json (sentences, then one line
per slice) with whatever raysweep is on the path; --rewrite first rewrites every slice in this
version's JSON (Slice.from_json, then to_json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from raysweep.report import findings


def load(out: Path, name: str):
    return json.loads((out / name).read_text()) if (out / name).exists() else None


def main() -> None:
    out = Path(sys.argv[1])
    boundary = load(out, "boundary.json")
    if "--rewrite" in sys.argv:
        from raysweep.laws.slices import Slice
        boundary = [Slice.from_json(s).to_json() for s in boundary]
    for f in findings.findings(load(out, "fits.json"), boundary, load(out, "adaptive.json"), {}):
        print(f.downstream)
        print("\n".join(f"  {s}" for s in f.sentences))
        print("\n".join(f"  {label} | {text}" for label, text in f.slices))


if __name__ == "__main__":
    main()
