"""One GPU, measured: what the paper's sweeps ask of it. Prints one JSON summary.

Run:      .venv/bin/python tests/benchmarks/bench_gpu.py            (<= 8 minutes on one GPU)
          .venv/bin/python tests/benchmarks/bench_gpu.py --smoke    (the CPU, tiny shapes: CI,
                                                                      tests/test_bench_gpu.py)
Outcome:  {"device", "peak_bf16_tflops", "sizes": {heads: {"alone": ..., "packed": ...}},
           "overrun": ..., "grid_slice": ...}:
- sizes: per model size at the paper's shape (DeiT, head dim 64, depth 12, 224 px, 16 px patches,
  batch 128, 100 classes), training through raysweep.train.loop.train from host images (the
  split cache's path: gathered by index, pinned, copied, augmented on the device): images/s and
  model FLOP utilisation (6 x params x tokens x images/s against the device's bf16 peak, from
  raysweep/sweep/gpus.py) for one trial alone, then for as many at once as the paper sweeps'
  share packs on one GPU (4 at 1/4, 2 at 1/2), each capped as a Tune worker caps itself: the
  aggregate images/s, torch's peak bytes per trial beside the planner's estimate
  (sweep/memory.py), and the bytes of a CUDA context (the GPU's used memory, with the lone trial on
  it, less torch's reserved bytes).
- overrun: two trials side by side at 1/8 of the GPU each; one asks for far more than its cap
  (8 heads at batch 1024) and must fail with raysweep's out-of-memory message (its share, cap and
  allocation), while its neighbour (2 heads, batch 128) finishes its steps.
- grid_slice: the smallest paper slice (paper-cifar10 at 2 and 4 heads, the smallest Dp and Df,
  one seed, one epoch per stage: 2 pretrainings, 2 fine-tunes, 1 distillation) end to end through
  `python -m raysweep.grid`, on synthetic data of the real layout and shapes (ImageNet-100 JPEGs
  of 320 x 256 px, 64 per class; CIFAR-10 pickles of 32 px, 5,000 images), with the GPU's
  utilisation sampled every 0.5 s by nvidia-smi over the run.
In --smoke every part runs on the CPU at 32 px, depth 2, batch 8, 2 heads only (no cap exists
on the CPU: the overrun part records that it could not be checked).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
PAPER = {"head_dim": 64, "depth": 12, "patch_size": 16, "image_size": 224, "channels": 3}
SMOKE = {**PAPER, "depth": 2, "image_size": 32}
SHARES = {2: 0.25, 4: 0.25, 6: 0.5, 8: 0.5}   # the paper sweeps' `resources:`
CLASSES = 100


def plan(smoke: bool) -> dict:
    return {"model": SMOKE if smoke else PAPER, "batch": 8 if smoke else 128,
            "steps": 3 if smoke else 40, "warm": 1 if smoke else 8,
            "sizes": [2] if smoke else [2, 4, 6, 8]}


# ---- one trial's training, in its own process (a Tune worker's own CUDA context)

def _trial(slot: int, heads: int, cfg: dict, share: float, batch: int, barrier, queue) -> None:
    import threading

    import torch

    from raysweep.run import cluster
    from raysweep.sweep import memory
    from raysweep.train import loop, models
    from raysweep.train.settings import TrainSettings

    torch.set_num_threads(1 if not torch.cuda.is_available() else 2)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cap = memory.memory_fraction(share) if device == "cuda" else None
    if cap is not None:
        torch.cuda.set_per_process_memory_fraction(cap)
    m = cfg["model"]
    net = models.create_model(heads=heads, num_classes=CLASSES, **m).to(device)
    n = batch * 4
    images = torch.randint(0, 256, (n, 3, m["image_size"], m["image_size"]), dtype=torch.uint8)
    labels = torch.randint(0, CLASSES, (n,))
    row = {"slot": slot, "heads": heads, "share": share, "batch": batch,
           "params": models.count_params(net)}
    try:
        for steps in (cfg["warm"], cfg["steps"]):   # the first call pays for kernels' set-up
            if steps == cfg["steps"]:
                try:
                    barrier.wait(timeout=300)      # timed together
                except threading.BrokenBarrierError:
                    pass                           # a neighbour failed: time this one alone
            settings = TrainSettings(steps=steps, batch_size=batch, warmup_steps=0,
                                     eval_batch_size=1)
            result = loop.train(net, images, labels, images[:1], labels[:1], settings, seed=0)
        row.update(status="ok", images_per_s=result.images_per_s)
    except cluster.oom_errors() as err:
        barrier.abort()
        total = torch.cuda.get_device_properties(0).total_memory
        row.update(status="failed", message=cluster.oom_message(f"{heads}-heads", share, err,
                                                                total))
    if device == "cuda":
        free, total = torch.cuda.mem_get_info()
        row.update(peak_allocated_bytes=torch.cuda.max_memory_allocated(),
                   reserved_bytes=torch.cuda.memory_reserved(), used_by_all_bytes=total - free)
    queue.put(row)


def run_together(jobs: list[tuple[int, float, int]], cfg: dict) -> list[dict]:
    """Start one process per (heads, share, batch) at once; their rows, in job order."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(len(jobs)), ctx.Queue()
    procs = [ctx.Process(target=_trial, args=(i, h, cfg, s, b, barrier, queue))
             for i, (h, s, b) in enumerate(jobs)]
    for p in procs:
        p.start()
    rows = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return sorted(rows, key=lambda r: r["slot"])


# ---- what a row means

def device_info() -> dict:
    import torch

    from raysweep.sweep import gpus
    if not torch.cuda.is_available():
        return {"device": "cpu", "gpu_type": None, "peak_bf16_tflops": None}
    name = torch.cuda.get_device_name(0)
    kind = gpus.from_device_name(name)
    return {"device": name, "gpu_type": kind,
            "peak_bf16_tflops": gpus.GPU_TYPES[kind].bf16_tflops if kind else None,
            "memory_bytes": torch.cuda.get_device_properties(0).total_memory}


def mfu(images_per_s: float, params: int, cfg: dict, peak_tflops: float | None):
    tokens = (cfg["model"]["image_size"] // cfg["model"]["patch_size"]) ** 2 + 1
    achieved = 6 * params * tokens * images_per_s
    return {"model_tflops": achieved / 1e12,
            "mfu": achieved / (peak_tflops * 1e12) if peak_tflops else None}


def estimate(heads: int, cfg: dict) -> int:
    """The planner's peak for a pretraining of this size and batch (sweep/memory.py)."""
    from raysweep.sweep import memory
    from raysweep.train.shape import param_count
    config = {"model": {**cfg["model"], "heads": heads},
              "train": {"epochs": 1, "batch_size": cfg["batch"], "warmup_epochs": 0}}
    params = param_count(heads=heads, num_classes=CLASSES, **cfg["model"])
    parts = memory.phase_parts(config, params, 0, config["train"], False)
    return round(sum(parts.values()) * memory.ALLOCATOR_SLACK)


def sizes(cfg: dict, peak) -> dict:
    out = {}
    for heads in cfg["sizes"]:
        share = SHARES[heads]
        (alone,) = run_together([(heads, 1.0, cfg["batch"])], cfg)
        n = int(1 / share) if not cfg.get("smoke") else 2
        packed = run_together([(heads, share, cfg["batch"])] * n, cfg)
        ok = [r for r in packed if r["status"] == "ok"]
        aggregate = sum(r["images_per_s"] for r in ok)
        # one CUDA context: the GPU's used memory, with the lone trial on it, less torch's reserve
        context = alone["used_by_all_bytes"] - alone["reserved_bytes"] \
            if "used_by_all_bytes" in alone else None
        out[heads] = {
            "alone": {**alone, **mfu(alone.get("images_per_s", 0), alone["params"], cfg, peak)},
            "packed": {"trials": n, "share": share, "ok": len(ok), "aggregate_images_per_s":
                       aggregate, **mfu(aggregate, alone["params"], cfg, peak),
                       "peak_allocated_bytes_per_trial": [r.get("peak_allocated_bytes")
                                                          for r in packed],
                       "cuda_context_bytes_per_trial": context,
                       "planner_estimate_bytes": estimate(heads, cfg)}}
    return out


def overrun(cfg: dict) -> dict:
    """8 heads at batch 1024 beside 2 heads at the sweep's batch, both at 1/8 of the GPU."""
    heads = (max(cfg["sizes"]), min(cfg["sizes"]))
    big, small = run_together([(heads[0], 0.125, 8 * cfg["batch"]),
                               (heads[1], 0.125, cfg["batch"])], cfg)
    return {"checked": "peak_allocated_bytes" in big, "overrun": big, "neighbour": small,
            "passed": big["status"] == "failed" and "ran out of GPU memory" in big["message"]
            and small["status"] == "ok"}


# ---- the smallest paper slice through the grid command

def write_imagenet100(root: Path, per_class: int, size: tuple[int, int]) -> None:
    """The real layout: imagenet100.txt, train/<wnid>/*.JPEG, val/<wnid>/*.JPEG."""
    import torch
    from torchvision.io import write_jpeg
    wnids = [f"n{c:08d}" for c in range(100)]
    root.mkdir(parents=True, exist_ok=True)
    (root / "imagenet100.txt").write_text("\n".join(wnids) + "\n")
    g = torch.Generator().manual_seed(0)
    for c, wnid in enumerate(wnids):
        for split, n in (("train", per_class), ("val", max(1, per_class // 10))):
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                noise = torch.randint(0, 64, (3, *size), generator=g, dtype=torch.uint8)
                write_jpeg(noise + (2 * c) % 192, str(folder / f"{wnid}_{k}.JPEG"), 90)


def write_cifar10(root: Path, train: int) -> None:
    """torchvision's CIFAR-10 pickles: 5 train batches, test_batch, batches.meta."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in files:
        n = train // 5            # each train batch, and the test batch, as in the real files
        labels = (np.arange(n) % 10).tolist()
        rows = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
        with open(base / name, "wb") as f:
            pickle.dump({"data": rows, "labels": labels}, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, f)


def slice_sweep(cfg: dict, n_up: int, n_down: int) -> dict:
    """paper-cifar10 cut to its smallest slice; Dp and Df as image counts (5 % of the synthetic
    sets: the planner resolves fractions against the real sets' sizes)."""
    raw = yaml.safe_load((ROOT / "sweeps" / "paper-cifar10.yaml").read_text())
    one = {"epochs": 1, "warmup_epochs": 0}
    raw.update(name="bench-gpu-slice", model={**cfg["model"], "heads": [2, 4]},
               teachers={4: [[2]]}, dp=[n_up // 20], df=[n_down // 20], seeds=[0],
               resources={2: raw["resources"][2], 4: raw["resources"][4]},
               train={k: {**v, **one} for k, v in raw["train"].items()},
               monitor={"eval_every": 0})
    raw["downstream"][0]["finetune"] = {"batch_size": 16}
    return raw


class UtilSampler:
    """nvidia-smi's GPU utilisation (%) and used memory (MiB) every 0.5 s, in the background."""

    def __init__(self):
        try:
            self.proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                 "--format=csv,noheader,nounits", "-lms", "500"], stdout=subprocess.PIPE,
                text=True)
        except FileNotFoundError:
            self.proc = None

    def stop(self) -> dict | None:
        if self.proc is None:
            return None
        self.proc.terminate()
        rows = [list(map(float, line.split(","))) for line in self.proc.communicate()[0]
                .splitlines() if line.strip()]
        util = [r[0] for r in rows]
        return {"samples": len(rows), "mean_util_pct": float(np.mean(util)) if util else None,
                "busy_fraction": float(np.mean([u > 0 for u in util])) if util else None,
                "max_memory_used_mib": max((r[1] for r in rows), default=None)}


def grid_slice(smoke: bool, cfg: dict, work: Path) -> dict:
    from raysweep.store import results
    started = time.perf_counter()
    data, per_class, n_down = work / "data", 4 if smoke else 64, 200 if smoke else 5_000
    write_imagenet100(data, per_class, (40, 48) if smoke else (256, 320))
    write_cifar10(data, n_down)
    sweep = work / "slice.yaml"
    sweep.write_text(yaml.safe_dump(slice_sweep(cfg, 100 * per_class, n_down)))
    written = time.perf_counter() - started
    env = {**os.environ, "RAYSWEEP_CACHE": str(work / "cache"), "RAY_AUTH_MODE": "disabled"}
    sampler, started = UtilSampler(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "raysweep.grid", "--sweep", str(sweep), "--out",
                           str(work / "out"), "--data-root", str(data), "--bootstrap", "10"],
                          check=False, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - started
    rows = results.read(str(work / "out")).to_pylist() if (work / "out").exists() else []
    return {"returncode": done.returncode, "wall_s": wall, "data_written_s": written,
            "trials": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
            "gpu": sampler.stop(), "stderr_tail": done.stderr[-2000:]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="the CPU, tiny shapes (CI)")
    args = p.parse_args(argv)
    cfg = {**plan(args.smoke), "smoke": args.smoke}
    info = device_info()
    started = time.perf_counter()
    summary = {**info, "smoke": args.smoke, "shape": cfg["model"], "batch": cfg["batch"],
               "sizes": sizes(cfg, info["peak_bf16_tflops"]), "overrun": overrun(cfg)}
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as work:
        summary["grid_slice"] = grid_slice(args.smoke, cfg, Path(work))
    summary["wall_s"] = time.perf_counter() - started
    print(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
