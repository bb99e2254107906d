"""What a training step of the default's models costs on the CPU, and whether torch offers a
cheaper one: the step as raysweep trains it (eager, fused attention, float32) against timm's
explicit attention, bf16 autocast, and torch.compile of the forward and backward.

    python tests/benchmarks/probe_step_speed.py [--steps 300]

One torch thread (what a trial uses), the default's shape (16 px, 4 px patches, head dim 8,
depth 2, 16 classes), batch 32, fused AdamW; ms per step after 10 warm-up steps, and for compile
the seconds its first steps took. Used for issue 14's criterion 1 (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F

from raysweep.train.models import create_model

VARIANTS = ("eager", "explicit attention", "bf16 autocast", "torch.compile")


def step_fn(model, variant: str):
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if variant == "bf16 autocast"
                else contextlib.nullcontext())

    def step(x, y):
        with autocast:
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss
    return torch.compile(step) if variant == "torch.compile" else step


def measure(heads: int, variant: str, steps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = create_model(heads=heads, num_classes=16, head_dim=8, depth=2, patch_size=4,
                         image_size=16, channels=1)
    for block in model.blocks:
        block.attn.fused_attn = variant != "explicit attention"
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    x, y = torch.randn(32, 1, 16, 16), torch.randint(0, 16, (32,))
    step = step_fn(model, variant)

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            optimizer.zero_grad(set_to_none=True)
            step(x, y)
            optimizer.step()
        return time.perf_counter() - start
    warm = run(10)
    return warm, run(steps) / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| heads | variant | ms / step | first 10 steps, s |\n|---|---|---|---|")
    for heads in (2, 8):
        for variant in VARIANTS:
            warm, ms = measure(heads, variant, args.steps)
            print(f"| {heads} | {variant} | {ms:.2f} | {warm:.1f} |", flush=True)


if __name__ == "__main__":
    main()
