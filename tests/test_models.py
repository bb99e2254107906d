"""DeiT family: parameter counts against hand arithmetic, gradients reach every parameter,
attention maps and the fused-attention switch."""

import pytest
import torch

from raysweep.cli import sweep_path
from raysweep.sweep import spec
from raysweep.train.models import attention_maps, count_params, create_model, replace_head
from raysweep.train.shape import DEIT_PAPER, param_count

PAPER = DEIT_PAPER
# A CPU-sized DeiT for the unit tests below: 16 px, 4 x 4 patches, RGB.
TINY = {"image_size": 16, "patch_size": 4, "depth": 4, "head_dim": 16, "heads": (2, 4, 6, 8)}
SHAPES = {"deit-paper": PAPER, "default": spec.load(sweep_path("default")).model}


def shape_of(table: dict) -> dict:
    return {k: v for k, v in table.items() if k != "heads"}


def small(heads: int, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs = {**shape_of(TINY), "depth": 2, **overrides}
    return create_model(heads=heads, num_classes=10, **kwargs)


# Width D = 64 heads, 12 blocks of 12 D^2 + 13 D, patch conv (3 x 16 x 16 + 1) D = 769 D,
# class token D, 197 positions 197 D, final norm 2 D, head 1000 D + 1000:
# 144 D^2 + 2125 D + 1000.
PAPER_PARAMS = {2: 2_632_296, 4: 9_982_184, 6: 22_050_664, 8: 38_837_736}


@pytest.mark.parametrize("heads", PAPER["heads"])
def test_paper_sizes_match_hand_count(heads):
    width = 64 * heads
    assert 144 * width**2 + 2125 * width + 1000 == PAPER_PARAMS[heads]
    assert param_count(heads=heads, num_classes=1000, **shape_of(PAPER)) == PAPER_PARAMS[heads]


def test_paper_sizes_span_the_papers_range():
    counts = [param_count(heads=h, num_classes=1000) for h in PAPER["heads"]]
    assert counts == sorted(counts)
    assert 2.5e6 < counts[0] and counts[-1] < 39e6
    assert counts[2] == 22_050_664  # 6 heads x 64 = DeiT-S, whose published size is 22.05M


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("heads", [2, 8])
@pytest.mark.parametrize("depth", [1, 3])   # two depths pin the per-block term and the rest
def test_counted_equals_allocated_count(name, heads, depth):
    """shape.param_count is arithmetic; timm's allocated model is the truth it must match."""
    kwargs = {**shape_of(SHAPES[name]), "depth": depth}
    model = create_model(heads=heads, num_classes=7, **kwargs)
    assert count_params(model) == param_count(heads=heads, num_classes=7, **kwargs)


def test_counted_equals_allocated_count_off_the_sweeps_shapes():
    kwargs = {"head_dim": 12, "depth": 2, "patch_size": 3, "image_size": 15, "channels": 2}
    model = create_model(heads=3, num_classes=5, **kwargs)
    assert count_params(model) == param_count(heads=3, num_classes=5, **kwargs)


# Every size of both shapes, at full depth and width. The paper's 224 px would cost ~200
# tokens per image on the CPU; 32 px (4 patch tokens + class token) keeps every parameter but the
# length of the position table, which the count tests above cover. Channels: the default sweep's 1
# (grey digits) for the default, RGB for the paper's.
SIZES = {"default": {"channels": 1}, "deit-paper": {"channels": 3, "image_size": 32}}


@pytest.mark.parametrize("name, heads", [(name, heads) for name in sorted(SHAPES)
                                         for heads in SHAPES[name]["heads"]])
def test_every_size_trains_and_every_parameter_gets_a_gradient(name, heads):
    torch.manual_seed(0)
    shape = {**shape_of(SHAPES[name]), **SIZES[name]}
    model = create_model(heads=heads, num_classes=10, **shape)
    x = torch.randn(2, shape["channels"], shape["image_size"], shape["image_size"])
    logits = model(x)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


@pytest.mark.parametrize("heads", TINY["heads"])
def test_attention_maps_shape_and_rows(heads):
    model = small(heads)
    tokens = (16 // 4) ** 2 + 1
    with attention_maps(model) as maps:
        model(torch.randn(3, 3, 16, 16))
        model(torch.randn(3, 3, 16, 16))  # the list is cleared per forward: still one per block
        assert len(maps) == 2
        for m in maps:
            assert m.shape == (3, heads, tokens, tokens)
            torch.testing.assert_close(m.sum(-1), torch.ones(3, heads, tokens))


def test_maps_path_gives_the_same_logits_as_fused():
    model, x = small(4), torch.randn(2, 3, 16, 16)
    fused = model(x)
    with attention_maps(model):
        unfused = model(x)
    torch.testing.assert_close(fused, unfused, rtol=1e-5, atol=1e-5)


def flags(model) -> list[bool]:
    return [block.attn.fused_attn for block in model.blocks]


def test_fused_attention_only_outside_the_context():
    model = small(2)
    assert flags(model) == [True, True]
    with attention_maps(model):
        assert flags(model) == [False, False]
    assert flags(model) == [True, True]
    with pytest.raises(RuntimeError, match="boom"), attention_maps(model):
        raise RuntimeError("boom")
    assert flags(model) == [True, True]
    with attention_maps(model) as maps:
        pass
    model(torch.randn(1, 3, 16, 16))
    assert maps == []  # hooks are gone after exit


def test_replace_head():
    model = small(2)
    replace_head(model, 3)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 3)
    assert model.num_classes == 3 and not model.head.bias.any()
    assert 0.01 < model.head.weight.std().item() < 0.03  # timm's trunc normal, std 0.02


@pytest.mark.parametrize("kwargs, match", [
    ({"heads": 0}, "heads must be an integer >= 1"),
    ({"heads": 2.5}, "heads must be an integer >= 1"),
    ({"heads": 2, "image_size": 18}, "divisible by patch_size"),
    ({"heads": 2, "channels": 0}, "channels must be"),
])
@pytest.mark.parametrize("entry", [create_model, param_count])
def test_bad_shapes_are_named(kwargs, match, entry):
    with pytest.raises(ValueError, match=match):
        entry(num_classes=10, **{**shape_of(TINY), **kwargs})
