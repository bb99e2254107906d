"""The DeiT family of the paper on timm's VisionTransformer: sizes, parameter counts, attention maps.

The paper's model axis M is the number of attention heads (2, 4, 6, 8) at a fixed head dimension
of 64, so the embedding width is heads x 64 (128 ... 512) and M runs from 2.6M to 38.8M parameters
at 224 px (see `DEIT_PAPER`). Every model is a plain DeiT: class token, pre-norm blocks, MLP
ratio 4, learned position embeddings, classifier on the class token.

Left out, and why:
- The distillation token of DeiT's *distilled* variant. The paper distils small-to-large through
  eq. 3 on the output logits plus attention-map alignment (sec. 3.3); it never mentions a second
  token, and a student with one would differ in size and architecture from the plain models it is
  compared with. We distil through the class token's logits.
- Stochastic depth, dropout and layer scale: the paper does not name them and every knob here is
  a knob the sweep would have to record; all rates are 0.
- timm's model registry (`timm.create_model('deit_small_patch16_224')`): its names fix the width
  by heads x 64 only for some sizes (deit_tiny has 3 heads, deit_small 6); building
  VisionTransformer directly gives every head count the same recipe.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from timm.layers import trunc_normal_
from timm.models.vision_transformer import VisionTransformer
from torch import nn

# The paper's model shape (sec. 3.3, DeiT at 224 px), and a sweep's `model:` defaults
# (raysweep.sweep.fields). Parameter count with width D = heads x head_dim, L blocks, P = patch,
# C channels, T tokens, K classes: L x (12 D^2 + 13 D)  [qkv 3D^2+3D, proj D^2+D, fc1 4D^2+4D,
# fc2 4D^2+D, 2 norms 4D] + (C P^2 + 1) D [patch conv] + D [class token] + T D [positions]
# + 2 D [final norm] + (D + 1) K [head]. With T = 14^2 + 1 = 197 and K = 1000 classes:
# 144 D^2 + 2125 D + 1000 = 2,632,296 (2 heads) / 9,982,184 (4) / 22,050,664 (6, = DeiT-S)
# / 38,837,736 (8) parameters.
DEIT_PAPER = {"head_dim": 64, "depth": 12, "patch_size": 16, "image_size": 224, "channels": 3,
              "heads": (2, 4, 6, 8)}


def _check_shape(heads: int, num_classes: int, head_dim: int, depth: int, patch_size: int,
                 image_size: int, channels: int) -> None:
    positive = {"heads": heads, "num_classes": num_classes, "head_dim": head_dim, "depth": depth,
                "patch_size": patch_size, "image_size": image_size, "channels": channels}
    for name, value in positive.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"model {name} must be an integer >= 1, got {value!r}")
    if image_size % patch_size:
        raise ValueError(f"model image_size {image_size} px must be divisible by patch_size "
                         f"{patch_size} px")


def _build(*, heads: int, num_classes: int, head_dim: int, depth: int, patch_size: int,
           image_size: int, channels: int) -> VisionTransformer:
    _check_shape(heads, num_classes, head_dim, depth, patch_size, image_size, channels)
    return VisionTransformer(
        img_size=image_size, patch_size=patch_size, in_chans=channels, num_classes=num_classes,
        embed_dim=heads * head_dim, depth=depth, num_heads=heads, mlp_ratio=4.0,
        class_token=True, global_pool="token")


def create_model(*, heads: int, num_classes: int, head_dim: int = 64, depth: int = 12,
                 patch_size: int = 16, image_size: int = 224, channels: int = 3) -> nn.Module:
    """A DeiT with `heads` heads of `head_dim` each (width heads x head_dim), fused attention on.

    Fused attention is forced on (timm reads TIMM_FUSED_ATTN from the environment): the model only
    leaves it inside `attention_maps`, so runs without attention distillation never pay for maps.
    """
    model = _build(heads=heads, num_classes=num_classes, head_dim=head_dim, depth=depth,
                   patch_size=patch_size, image_size=image_size, channels=channels)
    for block in model.blocks:
        block.attn.fused_attn = True
    return model


def count_params(model: nn.Module) -> int:
    """Number of parameters (all of them, trainable or not)."""
    return sum(p.numel() for p in model.parameters())


@functools.cache  # building even a meta-device model takes ~0.3 s; planners ask again and again
def param_count(*, heads: int, num_classes: int, head_dim: int = 64, depth: int = 12,
                patch_size: int = 16, image_size: int = 224, channels: int = 3) -> int:
    """Parameters of `create_model(...)` with the same arguments, without allocating weights."""
    with torch.device("meta"):
        model = _build(heads=heads, num_classes=num_classes, head_dim=head_dim, depth=depth,
                       patch_size=patch_size, image_size=image_size, channels=channels)
    return count_params(model)


def replace_head(model: nn.Module, num_classes: int) -> None:
    """A fresh classifier with `num_classes` outputs for fine-tuning, initialised as timm does
    (truncated normal, std 0.02; zero bias), on the old head's device and dtype."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"replace_head num_classes must be an integer >= 1, got {num_classes!r}")
    model.reset_classifier(num_classes)
    trunc_normal_(model.head.weight, std=0.02)
    nn.init.zeros_(model.head.bias)


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise ValueError(f"attention_maps needs a timm VisionTransformer (with .blocks), got "
                         f"{type(model).__name__}")
    return [block.attn for block in blocks]


@contextmanager
def attention_maps(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """While active, each forward of `model` fills the yielded list with one attention map per
    block, in block order: softmax probabilities (B, heads, N, N), rows summing to 1.

    The list is cleared at the start of every forward of `model` (a forward pre-hook), so it holds
    the maps of the latest forward only; read it (or keep references) before the next forward.
    Maps carry gradients when the forward does.

    How: timm's Attention computes `attn = softmax(q k^T / sqrt(d))` and passes it through
    `attn_drop` only on its non-fused path, so inside the context every block's `fused_attn` is
    switched off and a forward hook on `attn_drop` records the probabilities it receives (before
    dropout, which is off anyway). On exit, normal or by exception, the hooks are removed and each
    block's `fused_attn` is restored to what it was.
    """
    modules = _attention_modules(model)
    maps: list[torch.Tensor] = []
    saved_flags = [attn.fused_attn for attn in modules]
    handles = [model.register_forward_pre_hook(lambda _module, _args: maps.clear())]
    try:
        for attn in modules:
            attn.fused_attn = False
            handles.append(attn.attn_drop.register_forward_hook(
                lambda _module, args, _output: maps.append(args[0])))
        yield maps
    finally:
        for handle in handles:
            handle.remove()
        for attn, flag in zip(modules, saved_flags):
            attn.fused_attn = flag
