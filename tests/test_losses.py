"""Eq. 3 and the attention-map KL: known values, zero cases, no gradient into teachers, and the
relative-depth layer mapping."""

import math

import pytest
import torch
import torch.nn.functional as F

from raysweep.train.losses import attention_loss, distillation_loss, teacher_layer
from raysweep.train.models import attention_maps, create_model


def logits(seed: int, batch: int = 8, classes: int = 5) -> torch.Tensor:
    return torch.randn(batch, classes, generator=torch.Generator().manual_seed(seed)) * 3


def maps(seed: int, heads: int, batch: int = 2, tokens: int = 5) -> torch.Tensor:
    scores = torch.randn(batch, heads, tokens, tokens, generator=torch.Generator().manual_seed(seed))
    return scores.softmax(-1)


LABELS = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])


def test_alpha_one_is_exactly_cross_entropy():
    student = logits(0)
    loss = distillation_loss(student, [logits(1), logits(2)], LABELS, alpha=1.0, tau=4.0)
    assert torch.equal(loss, F.cross_entropy(student, LABELS))


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("tau", [0.5, 1.0, 4.0])
def test_non_negative(alpha, tau):
    loss = distillation_loss(logits(0), [logits(1)], LABELS, alpha=alpha, tau=tau)
    assert loss.item() >= 0


@pytest.mark.parametrize("tau", [1.0, 3.0])
def test_zero_kl_when_teacher_is_student(tau):
    student = logits(0)
    loss = distillation_loss(student, [student.clone(), student.clone()], LABELS, alpha=0.0,
                             tau=tau)
    assert abs(loss.item()) < 1e-6


def test_known_value_with_two_teachers_averages_probabilities():
    student, t1, t2, tau, alpha = logits(0), logits(1), logits(2), 2.0, 0.25
    target = (F.softmax(t1 / tau, -1) + F.softmax(t2 / tau, -1)) / 2
    log_student = F.log_softmax(student / tau, -1)
    kl = (target * (target.log() - log_student)).sum(-1).mean()
    expected = alpha * F.cross_entropy(student, LABELS) + (1 - alpha) * tau**2 * kl
    loss = distillation_loss(student, [t1, t2], LABELS, alpha=alpha, tau=tau)
    torch.testing.assert_close(loss, expected)
    # Averaging logits instead would be a different (wrong) target.
    logit_avg = distillation_loss(student, [(t1 + t2) / 2], LABELS, alpha=alpha, tau=tau)
    assert abs(logit_avg.item() - loss.item()) > 1e-3


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": 1.5, "tau": 1.0}, "alpha"),
    ({"alpha": 0.5, "tau": 0.0}, "tau"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        distillation_loss(logits(0), [logits(1)], LABELS, **kwargs)


def test_teacher_shape_mismatch_and_no_teacher():
    with pytest.raises(ValueError, match="must match the student"):
        distillation_loss(logits(0), [logits(1, classes=6)], LABELS, alpha=0.5, tau=1.0)
    with pytest.raises(ValueError, match="at least one teacher"):
        distillation_loss(logits(0), [], LABELS, alpha=0.5, tau=1.0)


def tiny_vit(heads: int, depth: int = 2, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(heads=heads, num_classes=5, head_dim=8, depth=depth, patch_size=4,
                        image_size=8)


def test_no_gradient_reaches_the_teachers():
    student, teachers = tiny_vit(6), [tiny_vit(2, seed=1), tiny_vit(4, depth=1, seed=2)]
    x, y = torch.randn(3, 3, 8, 8), torch.tensor([0, 1, 2])
    with attention_maps(student) as s_maps:
        s_logits = student(x)
    teacher_logits, teacher_maps = [], []
    for teacher in teachers:  # no torch.no_grad: the losses themselves must detach
        with attention_maps(teacher) as t_maps:
            teacher_logits.append(teacher(x))
        teacher_maps.append(list(t_maps))
    loss = (distillation_loss(s_logits, teacher_logits, y, alpha=0.5, tau=2.0)
            + attention_loss(list(s_maps), teacher_maps))
    loss.backward()
    assert all(p.grad is None for t in teachers for p in t.parameters())
    assert all(p.grad is not None for p in student.parameters())


def test_attention_loss_zero_for_identical_maps_positive_otherwise():
    layers = [maps(i, heads=4) for i in range(3)]
    assert attention_loss(layers, [layers]).item() == pytest.approx(0.0, abs=1e-6)
    other = [maps(10 + i, heads=4) for i in range(3)]
    assert attention_loss(layers, [other]).item() > 1e-3


def test_attention_loss_compares_head_averages():
    # A 2-head teacher whose head average equals the 4-head student's: zero loss, though no single
    # head agrees.
    student = maps(0, heads=4)
    halves = torch.stack([student[:, 0:2].mean(1), student[:, 2:4].mean(1)], dim=1)
    assert not torch.allclose(halves[:, 0], student[:, 0])
    assert attention_loss([student], [[halves]]).item() == pytest.approx(0.0, abs=1e-6)


def test_attention_loss_known_value_one_row():
    student = torch.tensor([[0.5, 0.5], [0.5, 0.5]])[None, None]
    teacher = torch.tensor([[0.9, 0.1], [0.5, 0.5]])[None, None]
    row_kl = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert attention_loss([student], [[teacher]]).item() == pytest.approx(row_kl / 2, rel=1e-5)


def test_several_teachers_are_averaged():
    a, b = maps(1, heads=2), maps(2, heads=2)
    mean = (a.mean(1, keepdim=True) + b.mean(1, keepdim=True)) / 2
    assert attention_loss([mean], [[a], [b]]).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("student_depth, teacher_depth, expected", [
    (4, 4, [0, 1, 2, 3]),
    (4, 2, [0, 0, 1, 1]),
    (2, 4, [1, 3]),
    (3, 2, [0, 1, 1]),
    (6, 2, [0, 0, 0, 1, 1, 1]),
    (12, 1, [0] * 12),
])
def test_layer_mapping_by_relative_depth(student_depth, teacher_depth, expected):
    assert [teacher_layer(i, student_depth, teacher_depth)
            for i in range(student_depth)] == expected


def test_attention_loss_uses_the_mapping_for_unequal_depths():
    teacher = [maps(20 + j, heads=2) for j in range(2)]
    aligned = [teacher[j] for j in (0, 0, 1, 1)]  # 4 student blocks on a 2-block teacher
    assert attention_loss(aligned, [teacher]).item() == pytest.approx(0.0, abs=1e-6)
    swapped = [teacher[j] for j in (1, 1, 0, 0)]
    assert attention_loss(swapped, [teacher]).item() > 1e-3


def test_attention_loss_rejects_mismatched_tokens():
    with pytest.raises(ValueError, match="same N x N tokens"):
        attention_loss([maps(0, heads=2, tokens=5)], [[maps(1, heads=2, tokens=6)]])
