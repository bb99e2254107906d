"""What a trial pays per epoch and per step beyond the model's own arithmetic, at the embedded
default's scale (16 px, 4 px patches, head dim 8, depth 2, batch 32, one torch thread):

  save    train() over 400 steps with no hook, and with the resumable state serialised at every
          epoch's end (what raysweep.run.trial did before CHECKPOINT_MIN_S), on 8 images (one
          step per epoch) and on 512 (16 steps per epoch); CPU seconds of this process
  report  a Ray Tune function trainable making 16 and 1,600 tune.report calls around 0.5 ms of
          work each (a one-step epoch's report, before report_every_s): the trial's wall time
  adamw   one training step (forward, backward, AdamW) with torch's foreach AdamW and with the
          fused one, 2 and 8 heads; ms per step

    RAY_AUTH_MODE=disabled python tests/benchmarks/bench_epoch_costs.py [save report adamw]
"""

from __future__ import annotations

import io
import sys
import time

import torch
import torch.nn.functional as F

from raysweep.train import loop, models
from raysweep.train.settings import TrainSettings

SHAPE = {"head_dim": 8, "depth": 2, "patch_size": 4, "image_size": 16, "channels": 1}


def net(heads: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return models.create_model(heads=heads, num_classes=16, **SHAPE)


def save() -> None:
    settings = TrainSettings(steps=400, warmup_steps=40, batch_size=32, lr=2e-3, warmup_lr=1e-5,
                             pad=1)

    def every_epoch(_epoch, state):
        loop.save_checkpoint(state, io.BytesIO())

    for n in (8, 512):
        images = torch.randint(0, 255, (n, 1, 16, 16), dtype=torch.uint8)
        labels = torch.randint(0, 16, (n,))
        for hook in (None, every_epoch):
            started = time.process_time()
            loop.train(net(2), images, labels, images, labels, settings, seed=0, on_epoch=hook)
            print(f"save   2 heads, {n:3d} images, {'a save per epoch' if hook else 'no saves':16s}"
                  f" {time.process_time() - started:5.2f} CPU s for 400 steps", flush=True)


def report() -> None:
    import ray
    from ray import tune

    def trainable(config):
        started = time.perf_counter()
        for i in range(config["n"]):
            sum(range(20_000))  # ~0.5 ms of work
            tune.report({"i": i, "wall": time.perf_counter() - started})

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    for n in (16, 1600):
        grid = tune.Tuner(trainable, param_space={"n": n},
                          run_config=tune.RunConfig(name=f"reports{n}", verbose=0)).fit()
        wall = grid[0].metrics["wall"]
        print(f"report {n:4d} reports: trial wall {wall:5.2f} s ({1e3 * wall / n:.2f} ms each)",
              flush=True)
    ray.shutdown()


def adamw() -> None:
    x, y = torch.randn(32, 1, 16, 16), torch.randint(0, 16, (32,))
    for heads in (2, 8):
        for fused in (None, True):
            model = net(heads)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused)

            def step(model=model, opt=opt):
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            for _ in range(20):
                step()
            started = time.process_time()
            for _ in range(300):
                step()
            ms = 1e3 * (time.process_time() - started) / 300
            print(f"adamw  {heads} heads, {'fused' if fused else 'foreach':7s} {ms:5.2f} ms/step",
                  flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    for part in sys.argv[1:] or ("save", "report", "adamw"):
        {"save": save, "report": report, "adamw": adamw}[part]()
