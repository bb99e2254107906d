"""The DeiT family of the paper on timm's VisionTransformer: sizes, parameter counts, attention maps.

The paper's model axis M is the number of attention heads (2, 4, 6, 8) at a fixed head dimension
of 64, so the embedding width is heads x 64 (128 ... 512) and M runs from 2.6M to 38.8M parameters
at 224 px (raysweep.train.shape counts them without building a model). Every model is a plain
DeiT: class token, pre-norm blocks, MLP ratio 4, learned position embeddings, classifier on the
class token.

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

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from timm.layers import trunc_normal_
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from raysweep.train.shape import check_shape


def create_model(*, heads: int, num_classes: int, head_dim: int = 64, depth: int = 12,
                 patch_size: int = 16, image_size: int = 224, channels: int = 3) -> nn.Module:
    """A DeiT with `heads` heads of `head_dim` each (width heads x head_dim), fused attention on.

    Fused attention is forced on (timm reads TIMM_FUSED_ATTN from the environment): the model only
    leaves it inside `attention_maps`, so runs without attention distillation never pay for maps.
    """
    check_shape(heads, num_classes, head_dim, depth, patch_size, image_size, channels)
    model = VisionTransformer(
        img_size=image_size, patch_size=patch_size, in_chans=channels, num_classes=num_classes,
        embed_dim=heads * head_dim, depth=depth, num_heads=heads, mlp_ratio=4.0,
        class_token=True, global_pool="token")
    for block in model.blocks:
        block.attn.fused_attn = True
    return model


def count_params(model: nn.Module) -> int:
    """Number of parameters (all of them, trainable or not)."""
    return sum(p.numel() for p in model.parameters())


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
