"""The fractal dataset's parameters: their defaults and checks (data/fractal.py draws the images).

Apart from the generator because the registry (raysweep.data) answers a fractal set's size and
classes from them in processes that never draw an image and should not import torch for it
(BENCHMARKS.md, "Worker imports").
"""

from __future__ import annotations

import numbers

DEFAULTS = {"classes": 10, "images_per_class": 1000, "test_per_class": 100, "seed": 0,
            "points": None}


def resolve_params(params: dict | None) -> dict:
    """DEFAULTS updated by `params`, checked: unknown key or a bad value -> ValueError."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"fractal: unknown params {unknown}; expected some of {sorted(DEFAULTS)}")
    out = {**DEFAULTS, **params}
    for key, least in (("classes", 2), ("images_per_class", 1), ("test_per_class", 1),
                       ("seed", 0), ("points", 1)):
        value = out[key]
        if key == "points" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise ValueError(f"fractal: params.{key} must be an integer >= {least}, got {value!r}")
        out[key] = int(value)
    return out
