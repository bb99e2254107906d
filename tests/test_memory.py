"""The memory plan (sweep/memory.py, sweep/gpus.py): its byte counts against what torch really
keeps for backward (real timm models, bf16 autocast on the CPU, the flash attention kernel a GPU
takes), its refusal of a share too small, the dry run's lines, and the shipped paper sweeps'
stated arithmetic against the planner's."""

import re
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
import torch
import yaml
from torch.nn.attention import SDPBackend, sdpa_kernel

from raysweep.sweep import gpus, memory, plan, spec
from raysweep.train import loop, models
from raysweep.train.settings import DistillSettings, TrainSettings

ROOT = Path(__file__).resolve().parent.parent
PAPER = sorted((ROOT / "sweeps").glob("paper-*.yaml"))
CLASSES = 100


def _saved_bytes(heads: int, batch: int, teachers=(), attention_weight: float = 0.0) -> int:
    """Bytes torch keeps for backward of one training forward at 224 px under bf16 autocast
    (parameters' own storage excluded), plus the teachers' attention maps the loss holds."""
    torch.manual_seed(0)
    net = models.create_model(heads=heads, num_classes=CLASSES)
    guides = [models.create_model(heads=h, num_classes=CLASSES).eval().requires_grad_(False)
              for h in teachers]
    storages: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = max(storages.get(s.data_ptr(), 0), s.nbytes())
        return t

    params = {p.untyped_storage().data_ptr() for m in [net, *guides] for p in m.parameters()}
    distill = DistillSettings(alpha=0.5, tau=2.0, attention_weight=attention_weight) \
        if guides else None
    x, y = torch.randn(batch, 3, 224, 224), torch.randint(0, CLASSES, (batch,))
    with ExitStack() as stack, sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        loss_fn = loop._loss_fn(net, guides, distill, TrainSettings(epochs=10, batch_size=batch),
                                stack)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                torch.autocast("cpu", dtype=torch.bfloat16):
            loss_fn(x, y)
    teacher_maps = 4 * batch * sum(teachers) * 197 ** 2 * 12 if attention_weight else 0
    return sum(b for p, b in storages.items() if p not in params) + teacher_maps


def _estimate_parts(heads: int, batch: int, teachers=(), attention_weight: float = 0.0) -> dict:
    config = {"model": {"heads": heads, "head_dim": 64, "depth": 12, "patch_size": 16,
                        "image_size": 224, "channels": 3},
              "train": {"epochs": 10, "batch_size": batch, "eval_batch_size": 1},
              "teachers": list(teachers), "distill": {"attention_weight": attention_weight}}
    params = models.count_params(models.create_model(heads=heads, num_classes=CLASSES))
    return memory.phase_parts(config, params, 0, config["train"], bool(teachers))


@pytest.mark.parametrize("heads", [2, 4, 6, 8])
def test_activations_bound_what_torch_saves_for_backward_within_a_third(heads):
    """The estimate's activations + autocast's bf16 weight copies (2 bytes per parameter, which
    torch saves for backward too) against the bytes saved: never below, at most 1/3 above."""
    batch = 4
    parts = _estimate_parts(heads, batch)
    bf16_copies = 2 * parts["weights+optimizer"] // memory.STUDENT_BYTES_PER_PARAM
    estimated = parts["activations"] + bf16_copies
    measured = _saved_bytes(heads, batch)
    assert measured <= estimated <= 4 / 3 * measured, (heads, measured, estimated)


def test_attention_maps_bound_what_a_distillation_keeps():
    """4 heads distilled from 2 with attention maps: saved tensors + the teacher's maps."""
    batch, teachers = 4, (2,)
    parts = _estimate_parts(4, batch, teachers, 1.0)
    plain = _estimate_parts(4, batch)
    extra_estimated = parts["attention maps"]
    extra_measured = _saved_bytes(4, batch, teachers, 1.0) - _saved_bytes(4, batch)
    assert plain["attention maps"] == 0
    assert extra_measured <= extra_estimated <= 2 * extra_measured


# ---- the GPU table

@pytest.mark.parametrize("device_name, name", [
    ("NVIDIA A10G", "A10G"), ("NVIDIA L4", "L4"), ("NVIDIA L40S", "L40S"),
    ("NVIDIA A100-SXM4-40GB", "A100-40GB"), ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
    ("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA H100 PCIe", "H100-PCIe"),
    ("NVIDIA H200", "H200"), ("Tesla T4", None)])
def test_torch_device_names_resolve_to_the_table(device_name, name):
    assert gpus.from_device_name(device_name) == name


def test_every_gpu_type_is_found_by_its_own_torch_words():
    for name, gpu in gpus.GPU_TYPES.items():
        assert gpus.from_device_name("NVIDIA " + " ".join(gpu.torch_names)) == name


# ---- the check before launch

def _paper(name: str, **changes) -> spec.Sweep:
    raw = yaml.safe_load((ROOT / "sweeps" / f"{name}.yaml").read_text())
    return spec.parse({**raw, **changes}, name)


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_every_paper_sweep_fits_its_named_gpu_with_a_fifth_to_spare(path):
    sweep = spec.load(path)
    gpu = gpus.gpu_type(sweep.gpu)
    trials = plan.plan(sweep)
    assert memory.problems(trials, sweep.gpu) == []
    for heads, (t, est) in memory.worst_by_size(trials).items():
        cap, _ = memory.share_bytes(t.resources["GPU"], gpu)
        assert est.gpu_bytes <= 0.8 * cap, (path.name, heads)
    total, _, _ = memory.node_host_bytes(sweep, trials)
    assert total <= 0.8 * 64 * memory.GIB   # the shipped g6e.2xlarge's host memory


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_the_arithmetic_in_each_paper_sweeps_comments_is_the_planners(path):
    """`N heads X GiB` in the header are the planner's peaks; `(D GiB)` its data sets."""
    sweep, text = spec.load(path), path.read_text()
    trials = plan.plan(sweep)
    stated = {int(h): float(g) for h, g in re.findall(r"(\d) heads (\d+\.\d\d) GiB", text)}
    planned = {h: round(est.gpu_bytes / memory.GIB, 2)
               for h, (_, est) in memory.worst_by_size(trials).items()}
    assert stated == planned
    total, sets, _ = memory.node_host_bytes(sweep, trials)
    assert f"mapped once ({sets / memory.GIB:.2f} GiB)" in text
    assert f"= {total / memory.GIB:.2f} GiB of" in text


def test_a_share_too_small_is_refused_naming_size_share_and_bytes():
    sweep = _paper("paper-imagenet100", gpu="A10G")
    lines = memory.problems(plan.plan(sweep), sweep.gpu)
    assert [line.split(":")[0] for line in lines] == ["4 heads", "8 heads"]
    assert "share 0.5 of a A10G (22.35 GiB) caps torch at 10.73 GiB" in lines[1]
    assert re.search(r"needs \d+\.\d\d GiB of GPU memory \(.*attention maps", lines[1])


def test_a_whole_gpu_is_checked_against_all_of_its_memory():
    raw = yaml.safe_load((ROOT / "sweeps" / "paper-imagenet100.yaml").read_text())
    raw["resources"] = {h: {"gpu": 1, "cpu": 8} for h in (2, 4, 6, 8)}
    trials = plan.plan(spec.parse({**raw, "gpu": "A10G"}))
    assert memory.problems(trials, "A10G") == []
    _, est = memory.worst_by_size(trials)[8]
    assert memory.share_bytes(1, gpus.GPU_TYPES["A10G"])[0] == 22_888 * 2 ** 20
    assert est.gpu_bytes + memory.CONTEXT_BYTES <= 22_888 * 2 ** 20


def test_an_unknown_gpu_in_a_sweep_names_the_field_and_the_known_types():
    with pytest.raises(spec.SweepError, match=r"gpu.*'B9000'.*A10G.*H100"):
        _paper("paper-cifar10", gpu="B9000")


def _grid(*args, cache: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "RAYSWEEP_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "raysweep.grid", *args], check=False,
                          capture_output=True, text=True, cwd=ROOT, env=env)


def test_dry_run_prints_each_size_beside_its_share_and_gpu_flag_refuses(tmp_path):
    ok = _grid("--sweep", "paper-imagenet100", "--dry-run", "--no-data-check", cache=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "memory (estimated; GPU type: L40S)" in ok.stdout
    assert re.search(r"8 heads: GPU memory up to \d+\.\d\d GiB \(distill\) of its 0\.5 x L40S "
                     r"cap 21\.46 GiB: fits", ok.stdout)
    out = tmp_path / "out"
    refused = _grid("--sweep", "paper-imagenet100", "--gpu", "A10G", "--out", str(out),
                    "--no-data-check", cache=tmp_path)
    assert refused.returncode == 2
    assert "error: 8 heads: its distill trial" in refused.stderr
    assert "2 model size(s) do not fit their GPU share" in refused.stderr
    assert not out.exists()
