"""Batch augmentation on uint8 image tensors: random crop with zero padding and random horizontal
flip, as one gather over the whole batch (no per-image Python), then scaling to [-1, 1].

The crop and the flip are one indexing operation: sample b reads rows `dy_b + i` and columns
`dx_b + j` (or `dx_b + W - 1 - j` when flipped) of the zero-padded batch. The gather runs on
uint8, a quarter of the bytes of float32; only the result is converted.

Zero padding, not reflection: it is the CIFAR convention (torchvision RandomCrop(padding=4) fills
with 0), and it keeps the "content shifts by at most `pad` pixels" property exact and testable.

Left out, and why: DeiT's ImageNet recipe (RandomResizedCrop, RandAugment, mixup/cutmix, random
erasing, repeated augmentation). The paper names none of them, they are per-image PIL pipelines
in DeiT, and for 16-32 px images crop + flip is the usual recipe.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Normalisation: x / 255 in [0, 1], then (x - 0.5) / 0.5, i.e. x / 127.5 - 1 in [-1, 1].
MEAN = 0.5
STD = 0.5


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) in [0, 255] -> float32 in [-1, 1] (mean 0.5, std 0.5), no augmentation."""
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4:
        raise ValueError(f"images must be uint8 (N, C, H, W), got {images_uint8.dtype} with shape "
                         f"{tuple(images_uint8.shape)}")
    return images_uint8.float().div_(255.0).sub_(MEAN).div_(STD)


def _crop_indices(n: int, height: int, width: int, pad: int, flip: bool,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices (n, H) and column indices (n, W) into the padded batch."""
    # Offsets in [0, 2 pad]: offset `pad` is the uncropped image; 0 and 2 pad shift by pad pixels.
    offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=generator.device)
    rows = offsets[0, :, None] + torch.arange(height, device=generator.device)
    cols = torch.arange(width, device=generator.device).expand(n, width)
    if flip:
        flipped = torch.rand(n, generator=generator, device=generator.device) < 0.5
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    return rows, offsets[1, :, None] + cols


def augment(images_uint8: torch.Tensor, *, pad: int, flip: bool,
            generator: torch.Generator) -> torch.Tensor:
    """Random `pad`-pixel crop (zero padding) and, if `flip`, random horizontal flip (p = 0.5) of
    every image in the uint8 batch (N, C, H, W); returns float32 as `to_float` does.

    Random numbers come from `generator` only (on its own device, then moved), so the result is a
    function of the images and the generator state.
    """
    if not isinstance(pad, int) or pad < 0:
        raise ValueError(f"augment pad must be an integer number of pixels >= 0, got {pad!r}")
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4:
        raise ValueError(f"images must be uint8 (N, C, H, W), got {images_uint8.dtype} with shape "
                         f"{tuple(images_uint8.shape)}")
    n, _, height, width = images_uint8.shape
    rows, cols = _crop_indices(n, height, width, pad, flip, generator)
    rows, cols = rows.to(images_uint8.device), cols.to(images_uint8.device)
    padded = F.pad(images_uint8, (pad, pad, pad, pad)) if pad else images_uint8
    batch = torch.arange(n, device=images_uint8.device)[:, None, None]
    # Advanced indices on dims 0, 2, 3 around the channel slice: the result is (N, H, W, C);
    # back to contiguous (N, C, H, W) while still uint8.
    cropped = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return to_float(cropped.permute(0, 3, 1, 2).contiguous())
