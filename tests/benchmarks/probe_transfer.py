"""Does fractal pretraining transfer? One pretraining on the default's upstream classes, then a
fine-tune on its novel downstream classes (seed 1, 5,000 test images), each timed in CPU seconds.
Issue 14's probes (docs/benchmarks-history.md, "The embedded default, redesigned"); one run per arg:

    python tests/benchmarks/probe_transfer.py \\
        "(classes, dp, image_px, heads, steps, lr, batch, depth, ft_steps, ft_lr, df)" ...

steps 0: no pretraining (fine-tune from scratch). One torch thread, seed 0.
"""

import sys
import time

import torch

from raysweep.data import load
from raysweep.train import loop, models
from raysweep.train.settings import TrainSettings

DOWN = {"seed": 1, "classes": 10, "images_per_class": 100, "test_per_class": 500}


def train(net, dataset, amount, steps, lr, batch):
    idx = load.subset_indices(dataset.train.labels, amount, 0)
    settings = TrainSettings(steps=steps, warmup_steps=steps // 10, batch_size=batch, lr=lr,
                             warmup_lr=1e-5, pad=1)
    started = time.process_time()
    result = loop.train(net, dataset.train.images[idx], dataset.train.labels[idx],
                        dataset.test.images, dataset.test.labels, settings, seed=0)
    return result.error, time.process_time() - started


def probe(classes, dp, px, heads, steps, lr, batch, depth, ft_steps, ft_lr, df):
    up = load.load_dataset("fractal", image_size=px, channels=1, params={
        "classes": classes, "images_per_class": 16000 // classes, "test_per_class": 30})
    torch.manual_seed(0)
    net = models.create_model(num_classes=classes, heads=heads, head_dim=8, depth=depth,
                              patch_size=4, image_size=px, channels=1)
    up_error, up_cpu = train(net, up, dp, steps, lr, batch) if steps else (float("nan"), 0.0)
    models.replace_head(net, DOWN["classes"])
    down = load.load_dataset("fractal", image_size=px, channels=1, params=DOWN)
    error, cpu = train(net, down, df, ft_steps, ft_lr, 32)
    print(f"up {classes} classes, Dp {dp}, {px} px, {heads} heads, depth {depth}, {steps} steps x "
          f"{batch} at lr {lr}: error {up_error:.3f}, {up_cpu:.1f} CPU s | fine-tune Df {df}, "
          f"{ft_steps} steps at lr {ft_lr}: error {error:.3f}, {cpu:.1f} CPU s", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    for arg in sys.argv[1:]:
        probe(*eval(arg))   # a tuple literal, as in the docstring
