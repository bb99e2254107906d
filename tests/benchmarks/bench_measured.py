"""The measured crossing per slice, pinned by the adaptive rounds against the denser grid a user
would run instead, at the compute each added.

    python tests/benchmarks/bench_measured.py BASE OUT [OUT ...]

BASE: a grid's output (e.g. `python -m raysweep.grid --out runs/g`); each OUT: a copy of BASE that
something added trials to (`python -m raysweep.adaptive --target boundary --out OUT`, or the same
sweep with more seeds or Dp values run into OUT: content-hashed ids run only the new trials).
Prints, per OUT, the FLOPs and worker-seconds its trials added to BASE, and one Markdown table:
per slice, the model-free crossing with its 95 % interval (raysweep.laws.measured.model_free,
from each directory's own rows), its relative width (hi - lo) / crossing, the share of seed draws
that do not cross, and the Dp values and seeds behind it.
"""

from __future__ import annotations

import sys

from raysweep.laws import boundary as bnd
from raysweep.laws import measured
from raysweep.store import results


def slices(out: str) -> dict[tuple, dict]:
    rows = bnd.ok_rows(results.read(out))
    found = {}
    for key, distilled in bnd.distilled_by_slice(rows).items():
        ds, heads, _, df = key
        plain = [r for r in rows if r["stage"] == "finetune" and r["downstream"] == ds
                 and r["heads"] == heads and r["df"] == df]
        per_dp = measured.paired_by_dp(plain, distilled)
        found[key] = measured.model_free(per_dp) | {
            "dps": len(per_dp), "pairs": sum(len(v) for v in per_dp.values())}
    return found


def added(base: str, out: str) -> tuple[float, float, int]:
    """(FLOPs, worker-seconds, trials) of OUT's ok trials that BASE does not have."""
    have = results.finished_ids(base)
    new = [r for r in results.read(out).to_pylist() if r["trial_id"] not in have]
    return (sum(r["flops"] or 0.0 for r in new), sum(r["wall_s"] or 0.0 for r in new), len(new))


def cell(s: dict) -> str:
    cross, ci = s["model_free_cross"], s["model_free_cross_ci"]
    if cross is None:
        share = s["model_free_no_cross_fraction"]
        return "no crossing" + ("" if share is None else f" ({share:.0%} of draws none)")
    if ci is None:
        return f"{cross:.3g} (no interval)"
    width = (ci[1] - ci[0]) / cross
    return (f"{cross:.3g} [{ci[0]:.3g}, {ci[1]:.3g}] w {width:.2f}, "
            f"{s['model_free_no_cross_fraction']:.0%} none; {s['dps']} Dp, {s['pairs']} pairs")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    base, outs = argv[0], argv[1:]
    for out in outs:
        flops, seconds, n = added(base, out)
        print(f"{out}: {n} trials added, {flops:.3g} FLOPs, {seconds:.0f} worker-s")
    tables = [slices(d) for d in (base, *outs)]
    print("\n| slice | " + " | ".join((base, *outs)) + " |\n|---|" + "---|" * (1 + len(outs)))
    for key in sorted(tables[0], key=lambda k: (str(k[0]),) + k[1:]):
        name = f"{key[1]} <- {'+'.join(map(str, key[2]))}, Df {key[3]}"
        print(f"| {name} | " + " | ".join(cell(t[key]) if key in t else "-" for t in tables)
              + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
