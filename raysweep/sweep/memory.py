"""What a trial needs of GPU and host memory, planned before anything starts: each trial's peak
on its GPU (weights, gradients, AdamW state, activations at its batch and image size, attention
maps when it distils them, its teachers, its batches) against its share of the GPU type the sweep
names, and the host bytes a trial and a node need. Pure arithmetic on the planned trials: no torch.

A trial's share of a GPU is logical in Ray; run/cluster.py caps torch's allocator at
`memory_fraction(share)` of the GPU, leaving MEMORY_MARGIN of it for the CUDA context, which torch
does not count. A trial fits when its estimated peak is under that cap and, with a CUDA context
beside it, under its share. The byte counts per unit below are calibrated against what torch
saves for backward under bf16 autocast (tests/test_memory.py bounds the measurement with them).

Left out: the allocator's fragmentation beyond ALLOCATOR_SLACK, cuDNN/cuBLAS workspaces (inside
CONTEXT_BYTES), and several GPUs per trial (a trial never spans GPUs; see train/loop.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from raysweep.sweep.gpus import GpuType, gpu_type
from raysweep.train.settings import TrainSettings

GIB = 2 ** 30
# Of a GPU, kept outside each capped trial's allocator: its CUDA context and kernels and the
# allocator's rounding. 0.02 of an 80 GiB GPU is 1.6 GiB, so eight trials of 1/8 each use at
# most 8 x (0.125 - 0.02) = 0.84 of it through torch.
MEMORY_MARGIN = 0.02
CONTEXT_BYTES = GIB // 2        # a CUDA context with cuBLAS/cuDNN loaded, outside torch's count

# Per parameter: fp32 weight 4 + gradient 4 + AdamW's two moments 8 + autocast's bf16 copy 2.
STUDENT_BYTES_PER_PARAM = 18
TEACHER_BYTES_PER_PARAM = 6     # frozen: fp32 weight 4 + bf16 copy 2
# Per token x width unit x block, kept for backward at bf16 autocast with fused attention
# (q, k, v, attention output, MLP in and hidden, norms, fp32 residual stream): Korthikanti et
# al. 2022 count 34 for pure half precision; autocast's fp32 residual and norms add a few more.
ACTIVATION_BYTES = 40
EVAL_BYTES = 24                 # a no-grad forward's live tensors per token x width (one block)
# Per attention probability (batch x heads x tokens^2 x blocks) when maps are distilled: the
# student's fp32 softmax kept for backward and its bf16 copy for attn @ v; a teacher's fp32 map
# kept until the loss.
STUDENT_MAP_BYTES = 6
TEACHER_MAP_BYTES = 4
BATCH_BYTES_PER_PIXEL = 6       # uint8 batch 1 + float32 augmented 4 + padded uint8 1
ALLOCATOR_SLACK = 1.15          # the caching allocator's block rounding and fragmentation

# Host, per trial: a worker process with torch, CUDA's libraries and timm loaded (an allowance),
# two pinned batches, and a checkpoint serialised in memory (weights + AdamW = 12 bytes per
# parameter, once as tensors on the host and once as bytes).
PROCESS_HOST_BYTES = 3 * GIB
CHECKPOINT_HOST_BYTES_PER_PARAM = 24


def memory_fraction(gpu_share: float) -> float | None:
    """The cap for torch.cuda.set_per_process_memory_fraction of a trial given GPU_SHARE of a
    GPU: share - MEMORY_MARGIN; None (no cap) for a whole GPU or none. 0.25 -> 0.23."""
    if not 0 < gpu_share < 1:
        return None
    return max(gpu_share - MEMORY_MARGIN, gpu_share / 2)


@dataclass(frozen=True)
class Estimate:
    gpu_bytes: int              # peak through torch's allocator, ALLOCATOR_SLACK included
    host_bytes: int             # the trial's own process; the mapped data set is per node
    parts: dict                 # name -> bytes of the phase that peaks, before slack


def _shape(model: dict) -> tuple[int, int, int]:
    """(tokens, width, blocks) of a config's model."""
    tokens = (model["image_size"] // model["patch_size"]) ** 2 + 1
    return tokens, model["heads"] * model["head_dim"], model["depth"]


def phases(config: dict) -> list[tuple[dict, bool]]:
    """(train settings, guided by teachers?) of each training phase of a trial's config."""
    train, teachers = config["train"], bool(config.get("teachers"))
    if "pretrain" in train:   # a distillation guiding pretraining, then a plain fine-tune
        return [(train["pretrain"], teachers), (train["finetune"], False)]
    return [(train, teachers)]


def phase_parts(config: dict, params: int, teacher_params: float, given: dict,
                guided: bool) -> dict:
    """Bytes by what holds them, for one phase of training."""
    settings = TrainSettings(**given)
    model, batch = config["model"], settings.batch_size
    tokens, width, blocks = _shape(model)
    pixels = model["channels"] * model["image_size"] ** 2
    heads = config.get("teachers", []) if guided else []
    maps = guided and config["distill"]["attention_weight"] > 0
    map_cells = batch * tokens ** 2 * blocks
    return {
        "weights+optimizer": STUDENT_BYTES_PER_PARAM * params,
        "teachers": round(TEACHER_BYTES_PER_PARAM * teacher_params * len(heads)),
        "activations": max(ACTIVATION_BYTES * batch * tokens * width * blocks,
                           EVAL_BYTES * settings.eval_batch_size * tokens * width
                           + 4 * settings.eval_batch_size * pixels),
        "attention maps": (STUDENT_MAP_BYTES * model["heads"] + TEACHER_MAP_BYTES * sum(heads))
        * map_cells if maps else 0,
        "batches": BATCH_BYTES_PER_PIXEL * batch * pixels,
    }


def estimate(trial) -> Estimate:
    """The peak over `trial`'s phases (a plan.Trial of backend train)."""
    c = trial.config
    parts = max((phase_parts(c, trial.params, trial.teacher_params or 0, given, guided)
                 for given, guided in phases(c)), key=lambda p: sum(p.values()))
    pixels = c["model"]["channels"] * c["model"]["image_size"] ** 2
    batch = max(TrainSettings(**given).batch_size for given, _ in phases(c))
    host = (PROCESS_HOST_BYTES + 2 * batch * pixels
            + CHECKPOINT_HOST_BYTES_PER_PARAM * trial.params)
    return Estimate(round(sum(parts.values()) * ALLOCATOR_SLACK), host, parts)


def share_bytes(share: float, gpu: GpuType) -> tuple[int, int]:
    """(torch's cap, the whole share) in bytes of a trial given `share` of a `gpu`."""
    cap = memory_fraction(share)
    whole = min(share, 1.0) * gpu.memory_bytes
    return round((cap if cap is not None else 1.0) * gpu.memory_bytes), round(whole)


def fits(est: Estimate, share: float, gpu: GpuType) -> bool:
    cap, whole = share_bytes(share, gpu)
    return est.gpu_bytes <= cap and est.gpu_bytes + CONTEXT_BYTES <= whole


def worst_by_size(trials) -> dict[int, tuple[object, Estimate]]:
    """heads -> (the trial of that size with the largest GPU peak, its estimate); trials that
    train only (a simulated trial holds no GPU memory)."""
    out: dict[int, tuple[object, Estimate]] = {}
    for t in trials:
        if t.config["backend"] != "train":
            continue
        est, heads = estimate(t), t.config["model"]["heads"]
        if heads not in out or est.gpu_bytes > out[heads][1].gpu_bytes:
            out[heads] = (t, est)
    return dict(sorted(out.items()))


def problems(trials, gpu_name: str | None, where: str = "gpu") -> list[str]:
    """One line per model size whose GPU share cannot hold its largest trial on `gpu_name`
    ([] when every size fits, or no GPU type is named, or the size asks for no GPU)."""
    if gpu_name is None:
        return []
    gpu = gpu_type(gpu_name, where)
    lines = []
    for heads, (t, est) in worst_by_size(trials).items():
        share = t.resources.get("GPU", 0)
        if share and not fits(est, share, gpu):
            cap, whole = share_bytes(share, gpu)
            parts = ", ".join(f"{k} {gib(v)}" for k, v in est.parts.items() if v)
            lines.append(
                f"{heads} heads: its {t.stage} trial {t.trial_id} needs {gib(est.gpu_bytes)} of "
                f"GPU memory ({parts}; x{ALLOCATOR_SLACK} allocator slack), but its share "
                f"{share:g} of a {gpu_name} ({gib(gpu.memory_bytes)}) caps torch at "
                f"{gib(cap)} and holds {gib(whole)} with a {gib(CONTEXT_BYTES)} CUDA context; "
                f"give {heads} heads a larger gpu share in `resources:`, smaller batches, or a "
                f"GPU type with more memory")
    return lines


def gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


# ---- for --dry-run: per model size, and per node

def dataset_bytes(sweep) -> dict[str, int]:
    """name -> bytes of each data set the sweep's trials map, decoded at the model's size: held
    once per node in its page cache (data/cache.py), whichever trials run there."""
    from raysweep import data
    m = sweep.model
    return {d.name: data.cached_bytes(d.name, d.params, sweep.data_root, m["image_size"],
                                      m["channels"])
            for d in (sweep.upstream, *sweep.downstream)}


def node_host_bytes(sweep, trials) -> tuple[int, int, int]:
    """(host bytes of a node of one GPU at its fullest, of them the data sets, the trials at
    once): every data set mapped, plus as many of the largest trial as the smallest share packs."""
    sized = worst_by_size(trials)
    shares = [t.resources.get("GPU", 0) for t, _ in sized.values()]
    per_gpu = max((int(1 / s) for s in shares if s), default=1)
    per_trial = max((est.host_bytes for _, est in sized.values()), default=0)
    sets = sum(dataset_bytes(sweep).values()) if sized else 0
    return sets + per_gpu * per_trial, sets, per_gpu


def describe(sweep, trials, gpu_name: str | None) -> list[str]:
    """The dry run's memory lines: per model size, the largest trial's GPU peak beside its
    share on `gpu_name`, and its host bytes; then a node's host bytes."""
    gpu = gpu_type(gpu_name) if gpu_name else None
    lines = []
    for heads, (t, est) in worst_by_size(trials).items():
        share, line = t.resources.get("GPU", 0), f"  {heads} heads: GPU memory up to {gib(est.gpu_bytes)}"
        if gpu and share:
            cap, _ = share_bytes(share, gpu)
            verdict = "fits" if fits(est, share, gpu) else "DOES NOT FIT"
            line += f" ({t.stage}) of its {share:g} x {gpu_name} cap {gib(cap)}: {verdict}"
        lines.append(f"{line}; host {gib(est.host_bytes)} per trial")
    if lines:
        total, sets, per_gpu = node_host_bytes(sweep, trials)
        lines.append(f"  host per node of one GPU: {gib(total)} = data sets {gib(sets)} (mapped "
                     f"once) + {per_gpu} trial(s) at once")
    return lines


def summary(sweep, trials, gpu_name: str | None) -> dict:
    """describe's figures as JSON (bytes)."""
    total, sets, per_gpu = node_host_bytes(sweep, trials)
    sizes = {}
    for heads, (t, est) in worst_by_size(trials).items():
        share = t.resources.get("GPU", 0)
        row = {"gpu_bytes": est.gpu_bytes, "host_bytes": est.host_bytes, "stage": t.stage,
               "parts": est.parts, "gpu_share": share}
        if gpu_name and share:
            gpu = gpu_type(gpu_name)
            row.update(cap_bytes=share_bytes(share, gpu)[0], fits=fits(est, share, gpu))
        sizes[heads] = row
    return {"gpu": gpu_name, "sizes": sizes, "node_host_bytes": total,
            "dataset_bytes": sets, "trials_per_gpu": per_gpu}
