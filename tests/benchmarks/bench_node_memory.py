"""How many copies of a data set one node holds while four trials pretrain on it at once, and how
long a later trial waits for the set. Prints a Markdown table.

Run:      .venv/bin/python tests/benchmarks/bench_node_memory.py [--code DIR ...] [--per-class N]
          (a few minutes per code tree on the shared 2-core VM; --code defaults to this tree; give
          several, e.g. `--code /work/wt/34-base /work/wt/34`, for before and after in one run)
Outcome:  per code tree: the Ray workers' summed proportional set size (PSS, shared pages counted
          once; /proc/PID/smaps_rollup, sampled every 0.2 s; split into anonymous and file-backed
          pages, the split cache's maps being file-backed) at its peak, for the grid below at
          224 px and at 32 px; the difference in copies of the set at 224 px (issue 34's target:
          <= 1.5); and the seconds a fresh process takes to load the set once the grid has run
          (a later trial on the node: it maps the split cache, or decodes again; imports not counted).
The data: a synthetic ImageNet-100 root of the real layout (imagenet100.txt, train/<wnid>/*.JPEG,
val/<wnid>/*.JPEG) with N (default 40) training JPEGs and 1 validation JPEG of 160 x 120 px per
class: 4,100 images, 0.62 GB at 224 px (the issue's set was 0.60 GB).
The grid: one model size (2 heads, depth 1: the data path is measured, not the model), four Dp
(a quarter to all of the set) pretraining at once, 8 steps of 8 images each, then their
fine-tunes on the same set; local Ray with 4 CPUs, one per trial. A code tree is put first on
PYTHONPATH, which Ray's workers inherit, and is the driver's working directory (which Ray's
workers put first on their path), so the same script measures any checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()
VAL_PER_CLASS = 1   # a test split of 100: each trial's closing evaluation (one batch of floats and
                    # activations, a few hundred MB at 224 px) would otherwise swamp the count


def write_root(root: Path, per_class: int) -> int:
    """The synthetic root; returns its images (train + val)."""
    import torch
    from torchvision.io import write_jpeg
    wnids = [f"n{c:08d}" for c in range(100)]
    root.mkdir(parents=True, exist_ok=True)
    (root / "imagenet100.txt").write_text("\n".join(wnids) + "\n")
    g = torch.Generator().manual_seed(0)
    for c, wnid in enumerate(wnids):
        for split, n in (("train", per_class), ("val", VAL_PER_CLASS)):
            (root / split / wnid).mkdir(parents=True, exist_ok=True)
            for k in range(n):
                image = torch.randint(0, 64, (3, 120, 160), generator=g, dtype=torch.uint8)
                write_jpeg(image + (2 * c) % 192, str(root / split / wnid / f"{k}.JPEG"), 90)
    return 100 * (per_class + VAL_PER_CLASS)


def sweep(image_size: int, train_images: int) -> dict:
    quarter = train_images // 4
    steps = {"steps": 8, "batch_size": 8, "warmup_steps": 0}
    return {"name": f"pss-{image_size}", "backend": "train", "upstream": {"name": "imagenet100"},
            "downstream": [{"name": "imagenet100"}],
            "model": {"head_dim": 64, "heads": [2], "depth": 1, "patch_size": 16,
                      "image_size": image_size, "channels": 3},
            "dp": [quarter, 2 * quarter, 3 * quarter, train_images], "df": [100], "seeds": [0],
            "train": {"pretrain": steps, "finetune": {**steps, "steps": 2}},
            "resources": {"default": {"cpu": 1}}, "retries": 0, "monitor": {"eval_every": 0}}


def driver(raw: dict, out: str, data_root: str) -> None:
    """Inside the code tree under test: the grid's trials through its executor, on a local Ray."""
    import ray

    from raysweep.run import executor
    from raysweep.run.trial import Context
    from raysweep.sweep import plan, spec
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    trials = plan.plan(spec.parse(raw))
    executor.run(trials, Context(out, data_root, eval_every=0), name=raw["name"], retries=0)


def pss_of_ray_workers() -> dict[str, int]:
    """Summed Pss, Pss_Anon and Pss_File (bytes) of the Ray worker processes ("ray::...")."""
    total = {"Pss": 0, "Pss_Anon": 0, "Pss_File": 0}
    for pid in os.listdir("/proc"):
        try:
            if not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::"):
                continue
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                key = line.split(":")[0]
                if key in total:
                    total[key] += int(line.split()[1]) * 1024
        except (OSError, ValueError):   # the process ended between listing and reading
            continue
    return total


def peak_while(cmd: list[str], env: dict, cwd: str) -> tuple[dict, float,
                                                             subprocess.CompletedProcess]:
    """(the sample of the Ray workers' PSS with the largest sum, wall seconds, the command)."""
    peak, stop = [{"Pss": 0}], threading.Event()

    def sample():
        while not stop.is_set():
            now = pss_of_ray_workers()
            if now["Pss"] > peak[0]["Pss"]:
                peak[0] = now
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    thread.start()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    stop.set()
    thread.join()
    return peak[0], time.perf_counter() - started, done


def load_seconds(code: str, data_root: str, cache: str, image_size: int) -> float:
    """A fresh process's load of the set, as a later trial on the node does it."""
    probe = ("import time, warnings; warnings.simplefilter('ignore'); "
             "from raysweep.data.load import load_dataset; t = time.perf_counter(); "
             f"load_dataset('imagenet100', image_size={image_size}, data_root={data_root!r}); "
             "print(time.perf_counter() - t)")
    env = {**os.environ, "PYTHONPATH": code, "RAYSWEEP_CACHE": cache}
    done = subprocess.run([sys.executable, "-c", probe], env=env, cwd=code, capture_output=True,
                          text=True, check=True)
    return float(done.stdout.split()[-1])


def measure(code: str, root: Path, images: int, train_images: int, work: Path) -> dict:
    row = {"code": code}
    for size in (32, 224):
        cache, out = work / f"cache-{size}", work / f"out-{size}"
        env = {**os.environ, "PYTHONPATH": code, "RAYSWEEP_CACHE": str(cache)}
        cmd = [sys.executable, str(HERE), "--driver", json.dumps(sweep(size, train_images)),
               str(out), str(root)]
        peak, wall, done = peak_while(cmd, env, code)   # Ray's workers put the cwd first too
        if done.returncode:
            raise SystemExit(f"{code} at {size} px failed:\n{done.stderr[-3000:]}")
        row[size] = {"peak_pss": peak["Pss"], "anon": peak.get("Pss_Anon", 0),
                     "file": peak.get("Pss_File", 0), "wall_s": wall, "cache_written": (cache / "splits").is_dir(),
                     "later_load_s": load_seconds(code, str(root), str(cache), size)}
    set_bytes = images * 3 * 224 * 224
    row["set_bytes"] = set_bytes
    for key, part in (("copies", "peak_pss"), ("anon_copies", "anon"), ("file_copies", "file")):
        row[key] = (row[224][part] - row[32][part]) / set_bytes
    return row


def table(rows: list[dict]) -> str:
    header = ("| code | peak PSS 224 px | peak PSS 32 px | growth, copies of the set (anonymous + "
              "file-backed) | wall s 224 / 32 | a later load at 224 px, s | split cache |")
    lines = [header, "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['code']} | {r[224]['peak_pss'] / 1e9:.2f} GB | "
                     f"{r[32]['peak_pss'] / 1e9:.2f} GB | {r['copies']:.2f} ({r['anon_copies']:.2f} + "
                     f"{r['file_copies']:.2f}; set {r['set_bytes'] / 1e9:.2f} GB) | {r[224]['wall_s']:.0f} / "
                     f"{r[32]['wall_s']:.0f} | {r[224]['later_load_s']:.2f} | "
                     f"{'yes' if r[224]['cache_written'] else 'no'} |")
    return "\n".join(lines)


def main() -> int:
    if sys.argv[1:2] == ["--driver"]:
        driver(json.loads(sys.argv[2]), sys.argv[3], sys.argv[4])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--code", nargs="+", default=[str(HERE.parents[2])])
    p.add_argument("--per-class", type=int, default=40)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp:
        work = Path(tmp)
        images = write_root(work / "root", args.per_class)
        rows = []
        for i, code in enumerate(args.code):
            (work / str(i)).mkdir()
            rows.append(measure(code, work / "root", images, 100 * args.per_class, work / str(i)))
    print(table(rows))
    print(json.dumps(rows, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
