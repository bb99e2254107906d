"""The training loop (it learns, it diverges cleanly, it resumes bit-exactly, it distils) and the
tensor augmentation it uses. Data: scikit-learn's 8 x 8 digits (1,797 real images, 10 classes)."""

import io
import itertools

import pytest
import torch
from sklearn.datasets import load_digits

from raysweep.train.augment import augment, to_float
from raysweep.train.loop import (
    DistillSettings,
    TrainSettings,
    evaluate,
    learning_rate,
    load_checkpoint,
    save_checkpoint,
    train,
)
from raysweep.train.models import create_model
from raysweep.train.settings import TABLE3


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    images = torch.tensor(d.images * 255 / 16).round().to(torch.uint8)[:, None]  # 0..16 -> 0..255
    labels = torch.tensor(d.target, dtype=torch.int64)
    return images[:1297], labels[:1297], images[1297:], labels[1297:]


def vit(heads: int = 2, depth: int = 2, seed: int = 0) -> torch.nn.Module:
    """8 px, 4 px patches: 4 patch tokens + the class token; about 1 s per 10 epochs of digits."""
    torch.manual_seed(seed)
    return create_model(heads=heads, num_classes=10, head_dim=16, depth=depth, patch_size=4,
                        image_size=8, channels=1)


# No crop padding here: a 1 px shift of an 8 px digit moves a quarter of each 4 px patch, which
# halves the learning speed (error 0.24 after 20 epochs vs 0.13 after 8); crops are tested above
# and in the resume test.
FAST = TrainSettings(epochs=8, batch_size=64, lr=3e-3, warmup_epochs=1, pad=0, flip=False)


# ---- augmentation -----------------------------------------------------------------------------

def numbered(n: int, side: int = 6) -> torch.Tensor:
    """n identical 1-channel images whose pixels are 1 .. side^2: every pixel is identifiable and
    0 is left for the padding."""
    return torch.arange(1, side * side + 1, dtype=torch.uint8).reshape(1, 1, side, side).repeat(
        n, 1, 1, 1)


def transforms(image: torch.Tensor, pad: int) -> dict[tuple, torch.Tensor]:
    """Every crop offset (dy, dx) in [-pad, pad]^2 and flip of one image, as to_float gives."""
    side = image.shape[-1]
    padded = torch.nn.functional.pad(image, (pad,) * 4)
    out = {}
    for dy, dx, flip in itertools.product(range(-pad, pad + 1), range(-pad, pad + 1), (0, 1)):
        crop = padded[..., pad + dy:pad + dy + side, pad + dx:pad + dx + side]
        out[dy, dx, flip] = to_float((crop.flip(-1) if flip else crop)[None])[0]
    return out


def test_crops_shift_by_at_most_pad_and_cover_all_shifts():
    pad, images = 2, numbered(400)
    out = augment(images, pad=pad, flip=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.float32
    candidates = transforms(images[0], pad)
    seen = set()
    for sample in out:
        match = [key for key, value in candidates.items() if torch.equal(sample, value)]
        assert len(match) == 1, "each output is exactly one shift/flip of its input"
        seen.add(match[0])
    assert seen == set(candidates)  # 25 shifts x 2 flips, all reached in 400 draws


def test_augment_is_deterministic_given_the_generator():
    images = numbered(64)
    first = augment(images, pad=2, flip=True, generator=torch.Generator().manual_seed(7))
    again = augment(images, pad=2, flip=True, generator=torch.Generator().manual_seed(7))
    other = augment(images, pad=2, flip=True, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_no_pad_no_flip_is_plain_scaling():
    images = torch.randint(0, 256, (5, 3, 4, 4), dtype=torch.uint8)
    out = augment(images, pad=0, flip=False, generator=torch.Generator())
    assert torch.equal(out, to_float(images))
    assert to_float(torch.tensor([0, 255], dtype=torch.uint8).reshape(1, 1, 1, 2)).tolist() == [
        [[[-1.0, 1.0]]]]


def test_augment_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        augment(torch.zeros(1, 1, 4, 4), pad=1, flip=False, generator=torch.Generator())


# ---- schedule and settings --------------------------------------------------------------------

def test_schedule_start_peak_end():
    s = TrainSettings(lr=1e-3, warmup_lr=1e-5, min_lr=1e-6, epochs=10, warmup_epochs=1)
    total, warmup = 100, 10
    values = [learning_rate(k, total, warmup, s) for k in range(total)]
    assert values[0] == pytest.approx(1e-5)
    assert values[5] == pytest.approx((1e-5 + 1e-3) / 2)  # half-way up the linear warm-up
    assert values[warmup] == pytest.approx(1e-3) and max(values) == values[warmup]
    assert values[-1] == pytest.approx(1e-6)
    mid = warmup + (total - 1 - warmup) / 2  # the cosine is half-way down at mid-decay
    assert learning_rate(mid, total, warmup, s) == pytest.approx((1e-3 + 1e-6) / 2)
    assert all(a >= b for a, b in zip(values[warmup:], values[warmup + 1:]))


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, "epochs must be > 0"),
    ({"epochs": 2, "warmup_epochs": 2}, "warmup_epochs"),
    ({"warmup_lr": 1e-2}, "warmup_lr"),
    ({"batch_size": 0}, "batch_size"),
    ({"pad": -1}, "pad"),
    ({"steps": 0}, "steps must be >= 1"),
    # Types: PyYAML reads `1e-5` as a string; a float batch size or an int flip is a typo.
    ({"lr": "1e-5"}, "lr must be of type float, got '1e-5'"),
    ({"batch_size": 64.0}, "batch_size must be of type int"),
    ({"flip": 1}, "flip must be of type bool"),
    ({"epochs": True}, "epochs must be of type float"),
    ({"steps": 10.5}, "steps must be of type int | None"),
    ({"steps": 10, "warmup_steps": 10}, "warmup_steps must be in \\[0, steps = 10\\)"),
    ({"warmup_steps": -1}, "warmup_steps must be in"),
    ({"warmup_steps": 2.0}, "warmup_steps must be of type int | None"),
])
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainSettings(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": -0.1, "tau": 1.0}, "alpha must be in"),
    ({"alpha": 0.5, "tau": 0}, "tau must be > 0"),
    ({"alpha": "0.5", "tau": 1.0}, "distill alpha must be of type float"),
])
def test_bad_distill_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistillSettings(**kwargs)


def test_good_settings_of_every_type_pass():
    s = TrainSettings(epochs=2, steps=7, batch_size=32, lr=1, pad=0, flip=False)  # int lr is a number
    assert (s.steps, s.lr, s.flip) == (7, 1, False)


@pytest.mark.parametrize("row", sorted(TABLE3))
def test_table3_rows(row):
    s = TrainSettings(**TABLE3[row])
    assert (s.lr, s.batch_size) == (5e-4, 16 if "cifar" in row else 128)
    assert s.warmup_lr == (1e-6 if row.startswith("pretrain") else 1e-5)


# ---- the loop ---------------------------------------------------------------------------------

def test_a_tiny_trial_learns(digits):
    result = train(vit(), *digits, FAST, seed=0)
    assert result.status == "ok" and result.message is None
    assert result.error < 0.3  # chance is 0.9; seeds 0, 1, 2 give 0.13-0.14
    assert 0 < result.loss < 1.0  # chance is ln 10 = 2.3 nats
    assert result.steps == 8 * 21  # ceil(1297 / 64) = 21 steps per epoch
    assert result.images_per_s > 0
    assert evaluate(vit(seed=1), *digits[2:])[0] > 0.6  # untrained: near chance


def test_fractional_epochs(digits):
    settings = TrainSettings(epochs=0.5, warmup_epochs=0.1, batch_size=64)
    assert train(vit(), *digits, settings, seed=0).steps == round(0.5 * 21)


def test_steps_replace_epochs_and_cross_epoch_ends(digits):
    epochs_seen = []
    settings = TrainSettings(steps=25, warmup_epochs=0.5, batch_size=128)  # epochs stays 300
    result = train(vit(), *digits, settings, seed=0,
                   on_epoch=lambda epoch, state: epochs_seen.append((epoch, state["step"])))
    assert result.status == "ok" and result.steps == 25
    assert epochs_seen == [(1, 11), (2, 22), (3, 25)]  # 11 steps per epoch, the third partial


def test_warmup_steps_replace_warmup_epochs(digits):
    lrs = []
    settings = TrainSettings(steps=30, warmup_steps=20, warmup_epochs=0.5, batch_size=128,
                             lr=1e-3, warmup_lr=1e-5, min_lr=1e-5)
    train(vit(), *digits, settings, seed=0,
          on_epoch=lambda epoch, state: lrs.append(state["metrics"]["lr"]))
    # the lr of each epoch's last step (10, 21, 29): still rising at step 10 of a 20-step
    # warm-up (0.5 epochs would have been 6 steps, past its peak by then), decaying afterwards
    assert lrs[0] == pytest.approx(learning_rate(10, 30, 20, settings))
    assert lrs[0] < 1e-3 * 0.6 and lrs[1] > lrs[2]


@pytest.mark.parametrize("poison", ["huge_lr", "nan_weight"])
def test_poisoned_run_ends_diverged(digits, poison):
    model, settings = vit(), FAST
    if poison == "huge_lr":
        settings = TrainSettings(epochs=3, batch_size=64, lr=1e6, warmup_lr=1e6, warmup_epochs=0)
    else:
        with torch.no_grad():
            model.blocks[0].mlp.fc1.weight[0, 0] = float("nan")
    result = train(model, *digits, settings, seed=0)
    assert result.status == "diverged" and result.error is None and result.loss is None
    assert "loss became" in result.message and "at step" in result.message
    if poison == "nan_weight":
        assert result.message == "loss became nan at step 0"


def test_resume_from_epoch_state_is_bit_exact(digits):
    settings = TrainSettings(epochs=3, batch_size=128, lr=3e-3, warmup_epochs=1, pad=1)
    saved = {}

    def keep(epoch, state):
        buf = io.BytesIO()
        save_checkpoint(state, buf)
        saved[epoch] = buf.getvalue()

    straight = vit()
    full = train(straight, *digits, settings, seed=3, on_epoch=keep)
    assert sorted(saved) == [1, 2, 3]
    state = load_checkpoint(io.BytesIO(saved[1]))
    assert state["epoch"] == 1 and state["step"] == 11  # ceil(1297 / 128) = 11 steps per epoch
    resumed = vit(seed=99)  # different init: everything must come from the state
    again = train(resumed, *digits, settings, seed=3, start_state=state)
    assert again.steps == full.steps and again.error == full.error
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_with_other_settings_is_refused(digits):
    states = []
    train(vit(), *digits, TrainSettings(epochs=1, warmup_epochs=0, batch_size=256), seed=0,
          on_epoch=lambda epoch, state: states.append(state))
    with pytest.raises(ValueError, match="start_state comes from a run of 6 steps"):
        train(vit(), *digits, TrainSettings(epochs=2, warmup_epochs=0, batch_size=256), seed=0,
              start_state=states[0])


def test_checkpoints_refuse_arbitrary_objects():
    buf = io.BytesIO()
    torch.save({"model": {}, "bad": TrainSettings()}, buf)
    buf.seek(0)
    with pytest.raises(Exception, match="weights_only|Unsupported global"):
        load_checkpoint(buf)


def record_fused_flags(models) -> tuple[list[bool], list]:
    """Forward pre-hooks on every block's attention that log its fused_attn flag at call time."""
    seen, handles = [], []
    for model in models:
        for block in model.blocks:
            handles.append(block.attn.register_forward_pre_hook(
                lambda module, args: seen.append(module.fused_attn)))
    return seen, handles


@pytest.mark.parametrize("attention_weight", [0.0, 1.0])
def test_distillation_two_smaller_teachers(digits, attention_weight):
    teachers = [vit(heads=2, seed=1), vit(heads=4, depth=1, seed=2)]
    before = [p.clone() for t in teachers for p in t.parameters()]
    student = vit(heads=6)
    seen, handles = record_fused_flags([student, *teachers])
    distill = DistillSettings(alpha=0.5, tau=2.0, attention_weight=attention_weight)
    settings = TrainSettings(epochs=1, batch_size=128, warmup_epochs=0.2)
    result = train(student, *digits, settings, seed=0, teachers=teachers, distill=distill)
    for handle in handles:
        handle.remove()
    assert result.status == "ok" and result.steps == 11
    assert all(not p.requires_grad for t in teachers for p in t.parameters())
    after = [p for t in teachers for p in t.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    training_calls = seen[:11 * 5]  # 11 steps x (2 student + 2 + 1 teacher blocks)
    # Maps only when the attention term is on; the test evaluation after training is fused.
    assert set(training_calls) == ({True} if attention_weight == 0 else {False})
    assert seen[11 * 5:] and all(seen[11 * 5:])


@pytest.mark.parametrize("teacher_heads", [4, 6])
def test_a_teacher_not_smaller_than_the_student_is_refused(digits, teacher_heads):
    student, small, big = vit(heads=4), vit(heads=2, seed=1), vit(heads=teacher_heads, seed=2)
    before = [p.clone() for p in student.parameters()]
    with pytest.raises(ValueError, match=r"teacher 1 has [\d,]+ parameters, the student "
                                         r"[\d,]+: .*must be smaller than its student"):
        train(student, *digits, FAST, seed=0, teachers=[small, big],
              distill=DistillSettings(alpha=0.5, tau=2.0))
    # Refused before anything changed: no step taken, the teachers' flags untouched.
    assert all(torch.equal(a, b) for a, b in zip(before, student.parameters()))
    assert big.training and all(p.requires_grad for p in big.parameters())


def test_teachers_need_distill_settings(digits):
    with pytest.raises(ValueError, match="both teachers and DistillSettings"):
        train(vit(), *digits, FAST, seed=0, teachers=[vit()])


def test_bad_split_is_named(digits):
    train_images, train_labels, test_images, test_labels = digits
    with pytest.raises(ValueError, match="train images must be uint8"):
        train(vit(), train_images.float(), train_labels, test_images, test_labels, FAST, seed=0)
    with pytest.raises(ValueError, match="test labels must be int64"):
        train(vit(), train_images, train_labels, test_images, test_labels[:5], FAST, seed=0)
