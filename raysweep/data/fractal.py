"""The formula-driven upstream dataset: FractalDB-style images (Kataoka et al. 2020, "Pre-training
without Natural Images"), generated on the fly so the pretraining amount Dp can span decades offline.

Each class is one random iterated function system (IFS): 2-4 contractive affine maps of the plane,
kept only if its attractor is neither line- or point-like nor a filled blob (FractalDB's filling-rate
filter, measured here on a 32 px render). Each image is an instance of its class: every map entry
jittered by at most +-JITTER (the per-instance variation FractalDB gets from its weighted maps), then
placed with a random scale, rotation, offset and horizontal mirror, and rendered by the chaos game
straight into an image_size grid as log point density (grayscale uint8, (N, 1, H, W)).

The chaos game runs all images at once: points / STEPS_PER_CHAIN independent chains per image
(at least MIN_CHAINS) advance together, one vectorised step per iteration (no per-image Python;
the Python loop is STEPS_PER_CHAIN long whatever the resolution). Chains start on the attractor
(the fixed point of a map lies on it), so no burn-in is spent; a few BOUNDS_STEPS steps measure
each image's extent before rendering so placement fits the image.

Its speed and how separable its classes are: BENCHMARKS.md, "Fractal generation".

Left out: FractalDB's colour and patch rendering and its 1k/10k class vocabularies (grayscale
density images are enough for the tiny ViTs here and keep generation fast), and exact reproduction
of FractalDB's images (a different sampler; only the idea is kept). At 224 px the default 200,704
points per image make generation slow (BENCHMARKS.md, "Fractal generation"): fine for a pilot, not
for millions of images (pass a smaller `points`, or pretrain on imagenet100).
Bumping VERSION invalidates every cached file; do it whenever the images would change.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from raysweep.data.fractal_params import resolve_params

VERSION = 1                    # part of the cache key: bump when generation changes
MAX_MAPS = 4                   # maps per IFS: 2..MAX_MAPS, padded to MAX_MAPS with weight 0
SINGULAR = (0.25, 0.85)        # singular values of a map's linear part: contractive, not collapsing
JITTER = 0.04                  # per-image +-uniform jitter of each map entry: the jitter's norm is
#                                <= 2 * 0.04, so a map's gain stays <= 0.85 + 0.08 < 1 (contractive)
SCALE = (0.6, 1.0)             # image-space scale of the attractor's bounding disk (1 = touches edges)
ROTATION_RAD = math.pi / 6     # placement rotation drawn from +-30 degrees
FILL = (0.06, 0.30)            # accepted fraction of 32x32 pixels hit by a class's attractor
FILL_CHECK_PX = 32             # resolution of the filling-rate check
STEPS_PER_CHAIN = 64           # rendered steps per chain: 16 px = 1,024 points = 16 chains x 64
MIN_CHAINS = 16                # ... and never fewer chains, so the bounds see 16 x 8 points
BOUNDS_STEPS = 8               # steps per chain spent measuring the extent, not rendered
CHUNK_PIXELS = 2 ** 24         # images per generation chunk = CHUNK_PIXELS // image_size**2

def default_points(image_size: int) -> int:
    """Chaos-game points per image: 4 per pixel (log-density rendering shows the structure at that
    rate), at least 1,024. 16 px -> 1,024; 32 px -> 4,096; 224 px -> 200,704."""
    return max(1024, 4 * image_size ** 2)


def _stream(seed: int, *purpose: int) -> torch.Generator:
    """An independent generator for (seed, purpose...): class systems, train, test, chunk."""
    state = np.random.SeedSequence([seed, *purpose]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2 ** 63 - 1))


def _random_maps(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n candidate systems: maps (n, MAX_MAPS, 6) as [a, b, c, d, e, f] for x' = a x + b y + e,
    y' = c x + d y + f, and probabilities (n, MAX_MAPS), proportional to |det| as in FractalDB."""
    theta, phi = (torch.rand(2, n, MAX_MAPS, generator=g) * 2 * math.pi)
    s = SINGULAR[0] + torch.rand(2, n, MAX_MAPS, generator=g) * (SINGULAR[1] - SINGULAR[0])
    mirror = torch.where(torch.rand(n, MAX_MAPS, generator=g) < 0.5, -1.0, 1.0)
    shift = torch.rand(n, MAX_MAPS, 2, generator=g) * 2 - 1
    linear = _rot(theta) @ torch.diag_embed(torch.stack([s[0], s[1] * mirror], -1)) @ _rot(phi)
    maps = torch.cat([linear.flatten(-2), shift], -1)
    used = torch.randint(2, MAX_MAPS + 1, (n, 1), generator=g)
    weight = (s[0] * s[1]) * (torch.arange(MAX_MAPS) < used)
    return maps, weight / weight.sum(-1, keepdim=True)


def _rot(angle: torch.Tensor) -> torch.Tensor:
    cos, sin = angle.cos(), angle.sin()
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)


def _apply(maps: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Apply per-point maps (..., 6) to points (..., 2)."""
    x, y = xy[..., 0], xy[..., 1]
    a, b, c, d, e, f = maps.unbind(-1)
    return torch.stack([a * x + b * y + e, c * x + d * y + f], -1)


def _fixed_point(maps: torch.Tensor) -> torch.Tensor:
    """Fixed point of the first map of each system, (n, 2): (I - A)^-1 t; it lies on the attractor."""
    a = maps[:, 0, :4].reshape(-1, 2, 2)
    return torch.linalg.solve(torch.eye(2) - a, maps[:, 0, 4:])


def chaos_game(maps: torch.Tensor, probs: torch.Tensor, placement: torch.Tensor, image_size: int,
               points: int, g: torch.Generator) -> torch.Tensor:
    """Hit counts (n, image_size, image_size) int32 of n systems' attractors.

    placement (n, 5): scale in (0, 1], rotation (rad), x offset, y offset (in half-image units,
    |offset| <= 1 - scale keeps the attractor inside), mirror (+-1). The attractor is centred on
    its bounding box and divided by the box's half-diagonal, so it fits the unit disk first."""
    n = len(maps)
    cdf = probs.cumsum(-1)
    chains = max(MIN_CHAINS, points // STEPS_PER_CHAIN)
    xy = _fixed_point(maps)[:, None, :].expand(n, chains, 2).contiguous()
    step = _stepper(maps, cdf, g)
    lo, hi = xy[:, 0].clone(), xy[:, 0].clone()
    for _ in range(BOUNDS_STEPS):
        xy = step(xy)
        lo, hi = torch.minimum(lo, xy.amin(1)), torch.maximum(hi, xy.amax(1))
    to_pixels = _placement_matrix(placement, (lo + hi) / 2, (hi - lo).norm(dim=-1) / 2, image_size)
    counts = torch.zeros(n * image_size * image_size, dtype=torch.int32)
    base = (torch.arange(n) * image_size * image_size)[:, None]
    for _ in range(math.ceil(points / chains)):
        xy = step(xy)
        px = _apply(to_pixels, xy).floor_().to(torch.int64)
        inside = ((px >= 0) & (px < image_size)).all(-1)
        flat = torch.where(inside, base + px[..., 1] * image_size + px[..., 0], 0)
        counts.index_add_(0, flat.view(-1), inside.view(-1).to(torch.int32))   # 0 if outside
    return counts.view(n, image_size, image_size)


def _stepper(maps: torch.Tensor, cdf: torch.Tensor, g: torch.Generator):
    """One chaos-game step for every chain: pick a map per chain by its probability, apply it."""
    def step(xy: torch.Tensor) -> torch.Tensor:
        u = torch.rand(xy.shape[:2], generator=g)
        k = (u[..., None] > cdf[:, None, :]).sum(-1).clamp_(max=MAX_MAPS - 1)
        chosen = torch.gather(maps, 1, k[..., None].expand(-1, -1, 6))
        return _apply(chosen, xy)
    return step


def _placement_matrix(placement: torch.Tensor, centre: torch.Tensor, radius: torch.Tensor,
                      image_size: int) -> torch.Tensor:
    """Per-image affine (n, 1, 6) from attractor coordinates to pixel coordinates:
    pixel = (R(rot) diag(mirror, 1) (p - centre) * scale / radius + offset + 1) * image_size / 2."""
    scale, rot, off_x, off_y, mirror = placement.unbind(-1)
    half = image_size / 2
    k = scale / radius.clamp(min=1e-6) * half
    lin = _rot(rot) @ torch.diag_embed(torch.stack([mirror, torch.ones_like(mirror)], -1))
    lin = lin * k[:, None, None]
    shift = torch.stack([off_x + 1, off_y + 1], -1) * half - (lin @ centre[..., None])[..., 0]
    return torch.cat([lin.flatten(-2), shift], -1)[:, None, :]


def to_image(counts: torch.Tensor) -> torch.Tensor:
    """Hit counts (n, H, W) -> uint8 (n, 1, H, W): log1p density scaled so each image's densest
    pixel is 255 (log, because a few pixels near the fixed points collect most hits)."""
    dens = torch.log1p(counts.float())
    peak = dens.flatten(1).amax(1).clamp(min=1e-6)[:, None, None]
    return (dens / peak * 255).round_().to(torch.uint8)[:, None]


def class_systems(classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`classes` systems that pass the filling-rate filter, in a seeded order: (maps, probs)."""
    g, kept_maps, kept_probs, found = _stream(seed, 0), [], [], 0
    while found < classes:
        maps, probs = _random_maps(4 * classes, g)
        as_is = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0]).expand(len(maps), 5)   # full size, upright
        hits = chaos_game(maps, probs, as_is, FILL_CHECK_PX, default_points(FILL_CHECK_PX), g)
        fill = (hits > 0).flatten(1).float().mean(1)
        ok = (fill >= FILL[0]) & (fill <= FILL[1])
        kept_maps.append(maps[ok])
        kept_probs.append(probs[ok])
        found += int(ok.sum())
    return torch.cat(kept_maps)[:classes], torch.cat(kept_probs)[:classes]


def instances(maps: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor, image_size: int,
              points: int, g: torch.Generator) -> torch.Tensor:
    """One uint8 image (1, H, W) per label: its class system jittered, placed and rendered."""
    n = len(labels)
    mine = maps[labels] + (torch.rand(n, MAX_MAPS, 6, generator=g) * 2 - 1) * JITTER
    scale = SCALE[0] + torch.rand(n, generator=g) * (SCALE[1] - SCALE[0])
    rot = (torch.rand(n, generator=g) * 2 - 1) * ROTATION_RAD
    offset = (torch.rand(n, 2, generator=g) * 2 - 1) * (1 - scale)[:, None]
    mirror = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    placement = torch.stack([scale, rot, offset[:, 0], offset[:, 1], mirror], -1)
    return to_image(chaos_game(mine, probs[labels], placement, image_size, points, g))


def generate(image_size: int, params: dict | None = None):
    """(train images, train labels, test images, test labels): uint8 (N, 1, H, W) and int64 (N,),
    class-major order. Train and test draw from separate streams of the seed, so changing
    test_per_class leaves the train images alone."""
    p = resolve_params(params)
    points = p["points"] or default_points(image_size)
    maps, probs = class_systems(p["classes"], p["seed"])
    out = []
    for split, per_class in ((1, p["images_per_class"]), (2, p["test_per_class"])):
        labels = torch.arange(p["classes"]).repeat_interleave(per_class)
        chunk = max(1, CHUNK_PIXELS // image_size ** 2)   # 16 px: 65,536 images, 64 MiB of counts
        images = torch.cat([
            instances(maps, probs, labels[start:start + chunk], image_size, points,
                      _stream(p["seed"], split, start // chunk))
            for start in range(0, len(labels), chunk)])
        out += [images, labels]
    return tuple(out)


def cache_path(cache_dir: str | Path, image_size: int, params: dict | None) -> Path:
    """Where `load` keeps these images: a hash of the generator version, size and all params."""
    key = {"version": VERSION, "image_size": image_size, **resolve_params(params)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return Path(cache_dir).expanduser() / "fractal" / f"{digest}.pt"


SPLIT_KEYS = ("train_images", "train_labels", "test_images", "test_labels")


def load(image_size: int, params: dict | None = None, cache_dir: str | Path | None = None):
    """`generate`, through a disk cache under cache_dir (None: no cache). An unreadable cache file
    is regenerated with a warning; a new file is written atomically (temp file + os.replace), so
    concurrent workers never read a half-written one."""
    if cache_dir is None:
        return generate(image_size, params)
    path = cache_path(cache_dir, image_size, params)
    if path.exists():
        try:
            blob = torch.load(path, weights_only=True)
            return tuple(blob[k] for k in SPLIT_KEYS)
        except Exception as exc:  # noqa: BLE001 -- any corruption means: regenerate
            warnings.warn(f"fractal cache {path} is unreadable ({exc}); regenerating", stacklevel=2)
    tensors = generate(image_size, params)
    _save_atomic(path, dict(zip(SPLIT_KEYS, tensors)))
    return tensors


def _save_atomic(path: Path, blob: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(blob, f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
