"""Does per-size tuning change the law? The embedded default grid with the sweep's one setting for
every size (untuned), the hyper-parameter search on its proxy, the same grid with the search's
overlay (tuned); the fitted exponents with 95 % intervals side by side, and mean errors per size.

Command:  .venv/bin/python tests/benchmarks/bench_hparams.py [--root /tmp/hp_bench] [--trials 12]
Runtime:  two default grids (~5 min each on an idle 2-core CPU) plus the search (4 sizes x
          --trials candidates on the proxy): ~30-60 min on a shared 2-core VM.
Outcome:  a Markdown table for BENCHMARKS.md on stdout; every step goes through the real CLIs
          (grid, adaptive --target hparams), each starting its own local Ray; a step whose OUT is
          complete is a no-op on a rerun (trials resume by id, studies by name).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from raysweep.laws.catalogue import SYMBOLS
from raysweep.store import results

PY = sys.executable
BOOTSTRAP = 200


def step(name: str, argv: list[str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.run([PY, "-m", *argv], stdout=f, stderr=subprocess.STDOUT,
                            check=False).returncode
    wall = time.perf_counter() - start
    print(f"{name}: exit {rc}, {wall / 60:.1f} min (log {log})", file=sys.stderr, flush=True)
    if rc:
        sys.exit(f"{name} failed; see {log}")
    return wall


def cell(law: dict, k: str) -> str:
    if law.get("status") != "ok":
        return f"not fitted ({law.get('status')})"
    if k in law.get("inputs_dropped", {}):
        return "left out"
    term = law.get("terms", {}).get(k)
    if not term:
        return "-"
    lo, hi = law.get("ci", {}).get(f"{k}.exponent") or (float("nan"),) * 2
    return f"{term['exponent']:.3g} [{lo:.3g}, {hi:.3g}]"


def exponent_rows(fits: dict[str, dict]) -> list[str]:
    rows = ["| law | exponent | untuned | tuned |", "|---|---|---|---|"]
    untuned, tuned = fits["untuned"]["downstream"], fits["tuned"]["downstream"]
    for ds in sorted(untuned):
        for name, law in untuned[ds].items():
            other = tuned.get(ds, {}).get(name, {})
            keys = [k for k in SYMBOLS if k in law.get("terms", {}) or k in other.get("terms", {})]
            for k in keys:
                rows.append(f"| {ds} {name} | {SYMBOLS[k].exponent} ({SYMBOLS[k].measures}) | {cell(law, k)} | {cell(other, k)} |")
    return rows


def error_rows(outs: dict[str, Path]) -> list[str]:
    means = {}
    for label, out in outs.items():
        for r in results.read(str(out)).to_pylist():
            if r["status"] == "ok" and r["stage"] != "pretrain":
                means.setdefault((r["stage"], r["heads"]), {}).setdefault(label, []).append(
                    r["error"])
    rows = ["| stage | heads | mean error untuned | mean error tuned |", "|---|---|---|---|"]
    for (stage, heads), by in sorted(means.items()):
        avg = {k: sum(v) / len(v) for k, v in by.items()}
        rows.append(f"| {stage} | {heads} | {avg.get('untuned', float('nan')):.4f} | "
                    f"{avg.get('tuned', float('nan')):.4f} |")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--root", default="/tmp/hp_bench")
    p.add_argument("--trials", type=int, default=12)
    args = p.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    outs = {"untuned": root / "untuned", "tuned": root / "tuned"}
    search = root / "search"
    walls = {
        "untuned grid": step("untuned grid", ["raysweep.grid", "--out", str(outs["untuned"]),
                                              "--bootstrap", str(BOOTSTRAP)], root / "untuned.log"),
        "search": step("search", ["raysweep.adaptive", "--target", "hparams", "--out",
                                  str(search), "--trials", str(args.trials)], root / "search.log"),
        "tuned grid": step("tuned grid", ["raysweep.grid", "--out", str(outs["tuned"]),
                                          "--overrides", str(search / "hparams.yaml"),
                                          "--bootstrap", str(BOOTSTRAP)], root / "tuned.log"),
    }
    fits = {k: json.loads((out / "fits.json").read_text()) for k, out in outs.items()}
    proxy = results.read(str(search / "hparams")).num_rows
    print("\n".join(exponent_rows(fits)))
    print()
    print("\n".join(error_rows(outs)))
    print()
    print((search / "hparams.yaml").read_text())
    print("wall: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in walls.items())
          + f"; proxy trials recorded: {proxy}")


if __name__ == "__main__":
    main()
