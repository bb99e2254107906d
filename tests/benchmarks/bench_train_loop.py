"""Training throughput of raysweep.train.train() against a bare PyTorch loop and standard
torchvision DataLoader pipelines, side by side, on the same in-memory data and the same model.

Run: .venv/bin/python tests/benchmarks/bench_train_loop.py [--quick] [--threads 1 2]
(about 10 minutes on the shared 2-core dev box; --quick: 1 thread, 2 rounds, a smoke run).
Prints a Markdown table: per (model, torch threads), images per wall-clock second and images per
CPU second of this process (median and range of interleaved rounds), and train() / bare.
Target: train() >= 0.95 x bare. The CPU-second figures are the ones to trust on a shared
machine: other tenants' load stretches wall-clock time but barely this process's CPU time.

Contenders (each on a fresh model; timed from optimizer creation to the last step):
- train():     the project loop (AdamW groups, warm-up/cosine lr per step, batch tensor
               augmentation, loss kept per step, non-finite check every 25 steps), with a
               one-image test split so its closing evaluation costs ~nothing.
- bare:        the same model, data, batch size, AdamW groups and augmentation ops, nothing else.
- tensor w0:   DataLoader(TensorDataset(uint8 images, labels), shuffle), num_workers 0, the same
               batch augmentation after collation: the cost of the DataLoader alone.
- v2 w0 / w1:  the torchvision way: a Dataset whose __getitem__ runs transforms.v2 RandomCrop(pad)
               + RandomHorizontalFlip + ToDtype + Normalize on one image, DataLoader(shuffle,
               num_workers 0 or 1).
Models: 'default-like' has the default sweep's shape (depth 4, 16 px, 4 px patches, 1 channel)
with 4 heads of dim 16 (the sweep now uses dim 8: 16 is the larger, steadier case) at the sweep's
pretraining batch 64 and fine-tuning crop padding 2 px; 'paper-like' is the paper's smallest
DeiT (head dim 64, 2 heads, depth 12) on CIFAR-size 32 px images with 4 px patches (65 tokens)
at Table 3's CIFAR batch 16. The machine is shared and noisy, so within a round the contenders
run in turn, and the starting contender rotates from round to round.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision.transforms import v2

from raysweep.train.augment import augment
from raysweep.train.loop import TrainSettings, _optimizer, train
from raysweep.train.models import create_model

CLASSES = 10


@dataclass(frozen=True)
class Case:
    shape: dict          # create_model arguments but num_classes
    batch: int           # images per step
    pad: int             # px of random-crop padding
    n_images: int        # training images; one figure = `epochs` passes over them
    epochs: int
    rounds: int          # interleaved repetitions; the median is reported

    @property
    def settings(self) -> TrainSettings:
        return TrainSettings(epochs=self.epochs, batch_size=self.batch, warmup_epochs=0.5,
                             pad=self.pad, flip=True)


CASES = {
    # 1 epoch x 2,048 / 64 = 32 steps = 2,048 images per figure (203k parameters, 17 tokens).
    "default-like": Case({"heads": 4, "head_dim": 16, "depth": 4, "patch_size": 4,
                          "image_size": 16, "channels": 1}, batch=64, pad=2, n_images=2048,
                         epochs=1, rounds=5),
    # 1 epoch x 96 / 16 = 6 steps = 96 images per figure (2.4M parameters, 65 tokens); pad 4 px
    # as torchvision's CIFAR recipe RandomCrop(32, padding=4).
    "paper-like": Case({"heads": 2, "head_dim": 64, "depth": 12, "patch_size": 4,
                        "image_size": 32, "channels": 3}, batch=16, pad=4, n_images=96, epochs=1,
                       rounds=3),
}


def make_data(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    side, channels = case.shape["image_size"], case.shape["channels"]
    images = torch.randint(0, 256, (case.n_images, channels, side, side), dtype=torch.uint8,
                           generator=g)
    return images, torch.randint(0, CLASSES, (case.n_images,), generator=g)


def fresh(case: Case) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(num_classes=CLASSES, **case.shape)


def step(model, optimizer, x, y) -> None:
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


# Each contender gets a fresh model and returns the images it trained on; `timed` clocks it from
# the call (so optimizer creation is inside for all) to the return.

def run_train(case: Case, model, images, labels) -> int:
    # One test image: train()'s closing evaluation is one tiny forward, ~0.1 % of a figure.
    train(model, images, labels, images[:1], labels[:1], case.settings, seed=0)
    return case.epochs * len(images)


def run_bare(case: Case, model, images, labels) -> int:
    optimizer = _optimizer(model, case.settings)  # the same AdamW groups as train()
    generator = torch.Generator().manual_seed(0)
    seen = 0
    for _ in range(case.epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), case.batch):
            batch = order[start:start + case.batch]
            x = augment(images[batch], pad=case.pad, flip=True, generator=generator)
            step(model, optimizer, x, labels[batch])
            seen += len(batch)
    return seen


class PerImage(Dataset):
    """The torchvision way: one uint8 image at a time through a v2 transform pipeline."""

    def __init__(self, images, labels, pad: int):
        self.images, self.labels = images, labels
        channels, side = images.shape[1], images.shape[-1]
        self.transform = v2.Compose([
            v2.RandomCrop(side, padding=pad), v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * channels,
                                                                [0.5] * channels)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


def run_loader(case: Case, model, dataset: Dataset, workers: int, batch_augment: bool) -> int:
    optimizer = _optimizer(model, case.settings)
    generator = torch.Generator().manual_seed(0)
    loader = DataLoader(dataset, batch_size=case.batch, shuffle=True, num_workers=workers,
                        generator=generator)
    seen = 0
    for _ in range(case.epochs):
        for x, y in loader:
            if batch_augment:
                x = augment(x, pad=case.pad, flip=True, generator=generator)
            step(model, optimizer, x, y)
            seen += len(y)
    return seen


CONTENDERS = {
    "train()": run_train,
    "bare": run_bare,
    "tensor w0": lambda c, m, x, y: run_loader(c, m, TensorDataset(x, y), 0, batch_augment=True),
    "v2 w0": lambda c, m, x, y: run_loader(c, m, PerImage(x, y, c.pad), 0, batch_augment=False),
    "v2 w1": lambda c, m, x, y: run_loader(c, m, PerImage(x, y, c.pad), 1, batch_augment=False),
}
# CPU seconds are this process's, all threads (time.process_time): the worker of "v2 w1" is
# another process, so its CPU figure would flatter it and is not shown.
CPU_SHOWN = ("train()", "bare", "tensor w0", "v2 w0")


def timed(name: str, case: Case, images, labels) -> tuple[float, float]:
    """(images per wall-clock second, images per CPU second) of one run of contender `name`."""
    model = fresh(case)
    wall, cpu = time.perf_counter(), time.process_time()
    seen = CONTENDERS[name](case, model, images, labels)
    return seen / (time.perf_counter() - wall), seen / (time.process_time() - cpu)


def measure(case: Case, threads: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    torch.set_num_threads(threads)
    images, labels = make_data(case)
    warm = Case(case.shape, case.batch, case.pad, case.batch * 2, 1, 1)
    for name in CONTENDERS:  # warm-up: allocator, thread pools, worker start code paths
        timed(name, warm, *make_data(warm))
    names = list(CONTENDERS)
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            figures[name].append(timed(name, case, images, labels))
    return figures


def cell(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def ratios(figures, which: int) -> str:
    """train() / bare: ratio of the medians, and median of the per-round ratios (each round's
    train() and bare ran close together, so load drifts cancel more)."""
    t, b = ([f[which] for f in figures[n]] for n in ("train()", "bare"))
    paired = statistics.median(x / y for x, y in zip(t, b))
    return f"{statistics.median(t) / statistics.median(b):.3f} / {paired:.3f}"


def rows(model: str, threads: int, figures) -> list[str]:
    wall = " | ".join(cell([f[0] for f in figures[n]]) for n in CONTENDERS)
    cpu = " | ".join(cell([f[1] for f in figures[n]]) if n in CPU_SHOWN else "-"
                     for n in CONTENDERS)
    return [f"| {model} | {threads} | wall | {wall} | {ratios(figures, 0)} |",
            f"| {model} | {threads} | CPU | {cpu} | {ratios(figures, 1)} |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 thread, 2 rounds: a smoke run")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch thread counts to measure (default: 1 2)")
    args = parser.parse_args()
    print(f"# bench_train_loop  {datetime.datetime.now():%Y-%m-%d %H:%M}  "
          f"{platform.machine()}  torch {torch.__version__}")
    print("# images per wall-clock second and per CPU second of this process, median (min-max) "
          "of interleaved rounds; train()/bare as ratio of medians / median of per-round ratios")
    print("| model | threads | clock | " + " | ".join(CONTENDERS) + " | train()/bare |")
    print("|---" * (len(CONTENDERS) + 4) + "|")
    for model, case in CASES.items():
        for threads in [1] if args.quick else args.threads:
            figures = measure(case, threads, 2 if args.quick else case.rounds)
            print("\n".join(rows(model, threads, figures)), flush=True)


if __name__ == "__main__":
    main()
