"""One trial, run twice in one process: the same id must mean the same run; how often the
resumable state is saved; and a process that plans and simulates never imports torch."""

import subprocess
import sys
from pathlib import Path

import torch
import yaml

from raysweep.run import stages
from raysweep.run import trial as trial_mod
from raysweep.store import results
from raysweep.sweep import plan, spec

SMOKE = Path(__file__).resolve().parents[1] / "sweeps" / "smoke.yaml"


def test_a_trial_reruns_bit_for_bit_whatever_the_global_generator_holds(tmp_path):
    trials = plan.plan(spec.load(SMOKE))
    pretrain = next(t for t in trials if t.stage == "pretrain")
    finetune = next(t for t in trials if t.stage == "finetune" and t.depends_on == (
        pretrain.trial_id,))
    runs = []
    for n, noise in enumerate((1, 2)):
        out = str(tmp_path / f"run{n}")
        torch.manual_seed(noise)          # what a reused worker's earlier trials leave behind
        rows = [trial_mod.run(t, trial_mod.Context(out)) for t in (pretrain, finetune)]
        weights = torch.load(Path(out) / "checkpoints" / f"{finetune.trial_id}.pt",
                             weights_only=True)
        runs.append(([(r["status"], r["error"], r["loss"]) for r in rows], weights))
        assert results.read(out).num_rows == 2
    (first, w1), (second, w2) = runs
    assert first == second and all(s == "ok" for s, _, _ in first)
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)
    assert torch.initial_seed() == 2      # the caller's generator is left as it was


def test_the_resumable_state_is_saved_at_most_every_checkpoint_min_s(tmp_path, monkeypatch):
    """Saves at epoch ends, never of the last epoch (the record follows), and none sooner than
    CHECKPOINT_MIN_S after the previous one: the same run, saved every epoch or only once."""
    raw = yaml.safe_load(SMOKE.read_text())
    raw["train"]["pretrain"]["epochs"] = 4
    raw.pop("hparams")
    pretrain = next(t for t in plan.plan(spec.parse(raw)) if t.stage == "pretrain")
    saved, real_save = [], stages.loop.save_checkpoint

    def counting(state, f):
        saved.append(state["epoch"])
        real_save(state, f)

    monkeypatch.setattr(stages.loop, "save_checkpoint", counting)
    epochs = {}
    for min_s, share in ((0.0, 1.0), (1e9, 0.02)):
        saved.clear()
        monkeypatch.setattr(stages, "CHECKPOINT_MIN_S", min_s)
        monkeypatch.setattr(stages, "CHECKPOINT_SHARE", share)
        row = trial_mod.run(pretrain, trial_mod.Context(str(tmp_path / str(min_s))))
        epochs[min_s] = (list(saved), row["error"])
    every, once = epochs[0.0], epochs[1e9]
    assert every[0] == [1, 2, 3]
    assert once[0] == [1] and once[1] == every[1]   # fewer saves, the same result


# What a Tune worker imports (the trainable's module) and does for a simulated trial, and what a
# driver does to plan: none of it may load torch, torchvision or timm (~6 CPU s a process), nor
# Ray's tracker integrations (~2.3 s).
WORKER = """
import sys
from raysweep.run import executor, trial
from raysweep.sweep import plan, spec
trials = plan.plan(spec.load(sys.argv[1]))
row = trial.run(trials[0], trial.Context(sys.argv[2]))
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "torchvision", "timm", "mlflow"}
               | {m for m in sys.modules if m.startswith("ray.air.integrations.")})
print(row["status"], len(trials), heavy)
"""


def test_planning_and_simulating_never_import_torch(tmp_path):
    sweep = Path(__file__).resolve().parents[1] / "sweeps" / "simulate.yaml"
    done = subprocess.run([sys.executable, "-c", WORKER, str(sweep), str(tmp_path)],
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    status, n_trials, heavy = done.stdout.split(maxsplit=2)
    assert status == "ok" and int(n_trials) > 1
    assert heavy.strip() == "[]"
