"""tests/benchmarks/bench_gpu.py --smoke: the GPU benchmark's every part, run on the CPU at tiny
shapes, so the command a GPU session runs cannot rot (issue 34)."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent / "benchmarks" / "bench_gpu.py"


def test_bench_gpu_smoke_runs_every_part_and_prints_one_json_summary(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH), "--smoke"], check=False,
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "RAY_AUTH_MODE": "disabled"})
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["device"] == "cpu" and summary["smoke"] is True
    (size,) = summary["sizes"].values()
    assert size["alone"]["status"] == "ok" and size["alone"]["images_per_s"] > 0
    assert size["alone"]["model_tflops"] > 0
    packed = size["packed"]
    assert packed["ok"] == packed["trials"] == 2 and packed["aggregate_images_per_s"] > 0
    assert packed["planner_estimate_bytes"] > 0
    assert summary["overrun"]["checked"] is False          # no allocator cap on the CPU
    assert summary["overrun"]["neighbour"]["status"] == "ok"
    grid = summary["grid_slice"]
    assert grid["returncode"] == 0, grid["stderr_tail"]
    assert grid["trials"] == grid["ok"] == 5               # 2 pretrain, 2 finetune, 1 distill
