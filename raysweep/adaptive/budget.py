"""What the adaptive rounds may spend, in the unit the user pays in.

  --budget 1x        as much compute again as the sweep's grid (the default): a multiple of the
                     grid's FLOPs, so one flag means the same on the laptop and on the cluster
  --budget 2e18      FLOPs: a number written with an exponent or with the suffix flops (2e18flops)
  --budget 40gpuh    GPU-hours at --throughput FLOP/s per GPU, converted to FLOPs
  --budget 120       trials: a whole number with no exponent and no suffix (or the suffix trials)

Compute is the planner's model (plan.flops: ~6 FLOPs per parameter per token, + 2 per teacher
parameter per token), the figure every result record carries, so the budget, adaptive.json, the
report and the benchmarks sum the same numbers. The grid (round 0) is outside the budget.

THROUGHPUT, the FLOP/s one GPU is taken to sustain when a budget is given in GPU-hours, is a stated
assumption, not a measurement: 1e14 is ~10 % of an H100's dense bf16 peak (989 TFLOP/s), about what
small ViTs (2.5M-38M parameters, batch 128-512) reach; pass --throughput with your own figure.
"""

from __future__ import annotations

import dataclasses
import re

from raysweep.errors import InputError

THROUGHPUT = 1e14   # FLOP/s per GPU for --budget in GPU-hours (an assumption; see above)
DEFAULT = "1x"
_FORMS = ("a number of trials (120), FLOPs (2e18 or 2e18flops), GPU-hours (40gpuh) or a multiple "
          "of the grid's compute (1x)")
_NUMBER = r"(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"


@dataclasses.dataclass(frozen=True)
class Budget:
    unit: str          # "trials" or "FLOPs"
    amount: float
    text: str          # as the user gave it

    def cost(self, trials) -> float:
        """What TRIALS (plan.Trial) cost in this budget's unit."""
        return float(len(trials)) if self.unit == "trials" else sum(t.flops for t in trials)

    def words(self, spent: float) -> str:
        """'spent 1.2e+17 of 4.3e+17 FLOPs (28%)', or the same in trials."""
        share = f" ({spent / self.amount:.0%})" if self.amount > 0 else ""
        return f"spent {_num(spent)} of {amount_words(self.amount, self.unit)}{share}"

    def json(self, spent: float) -> dict:
        return {"given": self.text, "unit": self.unit, "amount": self.amount, "spent": spent,
                "left": max(0.0, self.amount - spent)}


def parse(text: str, grid_flops: float, throughput: float = THROUGHPUT) -> Budget:
    """TEXT as --budget gives it; GRID_FLOPS: the sweep's grid's compute (for 1x)."""
    given = str(text).strip()
    m = re.fullmatch(_NUMBER + r"\s*(x|flops?|gpuh|trials?)?", given, re.IGNORECASE)
    if not m:
        raise InputError(f"--budget {given!r}: expected {_FORMS}")
    number, suffix = float(m.group(1)), (m.group(2) or "").lower()
    if suffix == "x":
        return Budget("FLOPs", number * grid_flops, given)
    if suffix == "gpuh":
        if not throughput > 0:
            raise InputError(f"--throughput must be > 0 FLOP/s, got {throughput}")
        return Budget("FLOPs", number * 3600 * throughput, given)
    if suffix.startswith("flop") or (not suffix and re.search("[eE]", m.group(1))):
        return Budget("FLOPs", number, given)
    if not number.is_integer():
        raise InputError(f"--budget {given!r}: a number of trials is whole; expected {_FORMS}")
    return Budget("trials", number, given)


def amount_words(x: float, unit: str) -> str:
    """'4.3e+17 FLOPs', '12 trials'."""
    return f"{_num(x)} {unit}"


def _num(x: float) -> str:
    return f"{x:.0f}" if x < 1e5 else f"{x:.3g}"
