"""The DeiT family's shape: the paper's sizes, the checks on a model's shape, and its parameter
count -- without torch or timm.

Planning a sweep needs every trial's parameter count (its FLOPs, its resources, the laws' model
axis), and so does every Tune worker, which receives the planned trials; most of them (simulated
trials, the driver) never build a model. Importing torch, torchvision and timm costs a process
seconds of CPU, and many workers starting at once on a few cores wait on one another for it
(BENCHMARKS.md, "Worker imports"), so the count is the arithmetic below, checked against timm's
allocated models in tests/test_models.py.
"""

from __future__ import annotations

# The paper's model shape (sec. 3.3, DeiT at 224 px), and a sweep's `model:` defaults
# (raysweep.sweep.fields).
DEIT_PAPER = {"head_dim": 64, "depth": 12, "patch_size": 16, "image_size": 224, "channels": 3,
              "heads": (2, 4, 6, 8)}


def check_shape(heads: int, num_classes: int, head_dim: int, depth: int, patch_size: int,
                image_size: int, channels: int) -> None:
    positive = {"heads": heads, "num_classes": num_classes, "head_dim": head_dim, "depth": depth,
                "patch_size": patch_size, "image_size": image_size, "channels": channels}
    for name, value in positive.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"model {name} must be an integer >= 1, got {value!r}")
    if image_size % patch_size:
        raise ValueError(f"model image_size {image_size} px must be divisible by patch_size "
                         f"{patch_size} px")


def param_count(*, heads: int, num_classes: int, head_dim: int = 64, depth: int = 12,
                patch_size: int = 16, image_size: int = 224, channels: int = 3) -> int:
    """Parameters of `models.create_model(...)` with the same arguments.

    Width D = heads x head_dim, L blocks, P = patch, C channels, T tokens (patches + class
    token), K classes: L x (12 D^2 + 13 D)  [qkv 3D^2+3D, proj D^2+D, fc1 4D^2+4D, fc2 4D^2+D,
    2 norms 4D] + (C P^2 + 1) D [patch conv] + D [class token] + T D [positions] + 2 D [final
    norm] + (D + 1) K [head]. With T = 14^2 + 1 = 197 and K = 1000: 144 D^2 + 2125 D + 1000 =
    2,632,296 (2 heads) / 9,982,184 (4) / 22,050,664 (6, = DeiT-S) / 38,837,736 (8)."""
    check_shape(heads, num_classes, head_dim, depth, patch_size, image_size, channels)
    width = heads * head_dim
    tokens = (image_size // patch_size) ** 2 + 1
    return (depth * (12 * width ** 2 + 13 * width) + (channels * patch_size ** 2 + 1) * width
            + width + tokens * width + 2 * width + (width + 1) * num_classes)
