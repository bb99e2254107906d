"""Training throughput of raysweep.train.train() against a bare PyTorch loop and a standard
torchvision DataLoader pipeline, side by side, on the same in-memory data and model.

Run: .venv/bin/python tests/benchmarks/bench_train_loop.py  (about 5 minutes on 2 CPU cores)
Prints images/s (median of interleaved rounds) per torch thread count and model size, and
train() / bare. Target: train() >= 0.95 x bare loop.

- train():  the project loop (AdamW + warm-up/cosine, tensor augmentation, divergence checks).
- bare:     the same model, data, batch size, optimizer and augmentation ops, nothing else.
- loader wN: a torchvision Dataset of uint8 tensors with per-image v2 RandomCrop(padding) +
            RandomHorizontalFlip + ToDtype/Normalize, through DataLoader(num_workers=N).
Model: the 'deit-tiny-cpu' preset (16 px, 4 px patches, depth 4, head dim 16), 2 and 8 heads,
batch 128, 2,048 random images of 10 classes. Each figure is 2 epochs = 32 steps = 4,096 images;
the machine is shared and noisy, so the contenders run in turn, round after round.
"""

from __future__ import annotations

import datetime
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from raysweep.augment import augment
from raysweep.models import create_model, preset
from raysweep.train import TrainSettings, _optimizer, train

N_IMAGES, CLASSES, BATCH, EPOCHS, PAD, ROUNDS = 2048, 10, 128, 2, 2, 3
SHAPE = {k: v for k, v in preset("deit-tiny-cpu").items() if k != "heads"}
SETTINGS = TrainSettings(epochs=EPOCHS, batch_size=BATCH, warmup_epochs=0.5, pad=PAD, flip=True)


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    size = SHAPE["image_size"]
    images = torch.randint(0, 256, (N_IMAGES, 3, size, size), dtype=torch.uint8, generator=g)
    return images, torch.randint(0, CLASSES, (N_IMAGES,), generator=g)


def fresh(heads: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(heads=heads, num_classes=CLASSES, **SHAPE)


def run_train(heads: int, images, labels) -> float:
    result = train(fresh(heads), images, labels, images[:BATCH], labels[:BATCH], SETTINGS, seed=0)
    return result.images_per_s


def run_bare(heads: int, images, labels) -> float:
    model = fresh(heads)
    optimizer = _optimizer(model, SETTINGS)  # the same AdamW groups as train()
    generator = torch.Generator().manual_seed(0)
    seen, started = 0, time.perf_counter()
    for _ in range(EPOCHS):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), BATCH):
            batch = order[start:start + BATCH]
            x = augment(images[batch], pad=PAD, flip=True, generator=generator)
            loss = F.cross_entropy(model(x), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(batch)
    return seen / (time.perf_counter() - started)


class PerImage(Dataset):
    """The torchvision way: one image at a time through a transform pipeline."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels
        self.transform = v2.Compose([
            v2.RandomCrop(SHAPE["image_size"], padding=PAD), v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


def run_loader(heads: int, images, labels, workers: int) -> float:
    model = fresh(heads)
    optimizer = _optimizer(model, SETTINGS)
    loader = DataLoader(PerImage(images, labels), batch_size=BATCH, shuffle=True,
                        num_workers=workers, generator=torch.Generator().manual_seed(0))
    seen, started = 0, time.perf_counter()
    for _ in range(EPOCHS):
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(y)
    return seen / (time.perf_counter() - started)


CONTENDERS = {
    "train()": run_train,
    "bare": run_bare,
    "loader w0": lambda h, x, y: run_loader(h, x, y, 0),
    "loader w1": lambda h, x, y: run_loader(h, x, y, 1),
}


def measure(threads: int, heads: int, images, labels) -> dict[str, list[float]]:
    torch.set_num_threads(threads)
    for run in CONTENDERS.values():  # warm-up: allocator, thread pools, worker start code paths
        run(heads, images[:BATCH * 4], labels[:BATCH * 4])
    figures: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for _ in range(ROUNDS):
        for name, run in CONTENDERS.items():
            figures[name].append(run(heads, images, labels))
    return figures


def main() -> None:
    images, labels = make_data()
    print(f"# bench_train_loop  {datetime.date.today()}  {platform.processor() or platform.machine()}"
          f"  torch {torch.__version__}  cores {torch.get_num_threads()}")
    print(f"# {N_IMAGES} images 3x{SHAPE['image_size']}px, batch {BATCH}, {EPOCHS} epochs, "
          f"pad {PAD}, flip; median of {ROUNDS} interleaved rounds; images/s")
    header = f"{'threads':>7} {'heads':>5} " + " ".join(f"{n:>10}" for n in CONTENDERS)
    print(header + f" {'train/bare':>10}")
    for threads in (1, 2):
        for heads in (2, 8):
            rounds = measure(threads, heads, images, labels)
            fig = {name: statistics.median(values) for name, values in rounds.items()}
            row = " ".join(f"{fig[n]:>10.0f}" for n in CONTENDERS)
            spread = "  ".join(f"{n} {min(v):.0f}-{max(v):.0f}" for n, v in rounds.items())
            print(f"{threads:>7} {heads:>5} {row} {fig['train()'] / fig['bare']:>10.3f}"
                  f"   (range: {spread})", flush=True)


if __name__ == "__main__":
    main()
