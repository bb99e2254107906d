"""The small-to-large distillation losses of sec. 3.3: eq. 3 on the logits, KL on attention maps.

Eq. 3: L = alpha CE(student, labels) + (1 - alpha) tau^2 KL(p_teacher || p_student), with both
distributions softmax(logits / tau). The tau^2 keeps the KL gradient on the scale of the CE
gradient as tau grows (Hinton et al. 2015). The printed eq. 3 writes KL(sigma(z_s/tau),
sigma(z_t/tau)) with z_s the *teacher*: the usual KL(teacher || student), as here. Several
teachers: their softened distributions (probabilities, not logits) are averaged into one target.

Attention alignment: teachers have fewer heads than the student, so maps are averaged over heads
to (B, N, N) and compared row by row (each query row is a distribution over the N keys).
No temperature on the maps: a head-averaged map is a mixture of softmaxes, not the softmax of one
score matrix, so "scores / tau" has no meaning for it, and the fused attention path never
materialises per-head scores. The paper gives no value either; tau = 1 is what is done.

Left out, and why: DeiT's hard-label distillation (argmax of the teacher) and its distillation
token; the paper uses soft targets through the class token (see models.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Attention probabilities of a student can underflow to exactly 0 in float32; the log is taken
# of max(p, 1e-12) so that KL stays finite (log 1e-12 = -27.6 nats, far beyond any real map).
_MIN_PROB = 1e-12


def teacher_distribution(teacher_logits: list[torch.Tensor], tau: float) -> torch.Tensor:
    """Mean over teachers of softmax(logits / tau), detached: (B, K) probabilities."""
    if not teacher_logits:
        raise ValueError("distillation needs at least one teacher's logits, got none")
    probs = [F.softmax(logits.detach().float() / tau, dim=-1) for logits in teacher_logits]
    return torch.stack(probs).mean(0)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: list[torch.Tensor],
                      labels: torch.Tensor, *, alpha: float, tau: float,
                      label_smoothing: float = 0.0) -> torch.Tensor:
    """Eq. 3, averaged over the batch (nats). Teacher logits are detached."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"distillation alpha (weight of CE) must be in [0, 1], got {alpha}")
    if tau <= 0:
        raise ValueError(f"distillation tau (temperature) must be > 0, got {tau}")
    shapes = {tuple(t.shape) for t in teacher_logits}
    if shapes - {tuple(student_logits.shape)}:
        raise ValueError(f"teacher logits {sorted(shapes)} must match the student's "
                         f"{tuple(student_logits.shape)} (same batch, same classes)")
    ce = F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)
    target = teacher_distribution(teacher_logits, tau)
    log_student = F.log_softmax(student_logits.float() / tau, dim=-1)
    # batchmean: sum over classes, mean over the batch = KL per example, as eq. 3 means.
    kl = F.kl_div(log_student, target, reduction="batchmean")
    return alpha * ce + (1.0 - alpha) * tau**2 * kl


def teacher_layer(student_layer: int, student_depth: int, teacher_depth: int) -> int:
    """Teacher block aligned with student block `student_layer` (0-based) by relative depth.

    Student block i ends at relative depth (i + 1) / Ls; it is matched with the teacher block
    whose span ((j) / Lt, (j + 1) / Lt] contains that depth: j = ceil((i + 1) Lt / Ls) - 1.
    So the last blocks always match, equal depths match one to one, and a 4-block student of a
    2-block teacher uses teacher blocks 0, 0, 1, 1. (Rounding, round((i + 1) Lt / Ls) - 1, would
    send student block 0 to teacher block -1 whenever Lt <= Ls / 2: Python rounds 0.5 to 0.)
    """
    return -(-(student_layer + 1) * teacher_depth // student_depth) - 1


def _head_mean(maps: list[torch.Tensor]) -> list[torch.Tensor]:
    return [m.float().mean(1) for m in maps]


def _teacher_target(teacher_maps: list[list[torch.Tensor]], student_depth: int,
                    student_layer: int) -> torch.Tensor:
    """Head- and teacher-averaged map (B, N, N) aligned with one student block, detached."""
    aligned = [maps[teacher_layer(student_layer, student_depth, len(maps))].detach().float()
               .mean(1) for maps in teacher_maps]
    return torch.stack(aligned).mean(0)


def attention_loss(student_maps: list[torch.Tensor],
                   teacher_maps: list[list[torch.Tensor]]) -> torch.Tensor:
    """KL(teacher || student) of head-averaged attention maps (nats): summed over keys, averaged
    over query rows and the batch, then over student blocks.

    student_maps: one (B, Hs, N, N) per student block; teacher_maps: per teacher, one
    (B, Ht, N, N) per teacher block. Teacher maps are detached; several teachers are averaged.
    """
    if not student_maps or not teacher_maps or not all(teacher_maps):
        raise ValueError("attention_loss needs maps of at least one student and one teacher block")
    shapes = {tuple(m.shape[-2:]) for maps in [student_maps, *teacher_maps] for m in maps}
    if len(shapes) != 1:
        raise ValueError(f"attention maps must all have the same N x N tokens (same image and "
                         f"patch size), got {sorted(shapes)}")
    per_layer = []
    for i, student in enumerate(_head_mean(student_maps)):
        target = _teacher_target(teacher_maps, len(student_maps), i)
        kl_rows = (torch.xlogy(target, target) - target * student.clamp_min(_MIN_PROB).log()).sum(-1)
        per_layer.append(kl_rows.mean())
    return torch.stack(per_layer).mean()
