"""One trial, run twice in one process: the same id must mean the same run."""

from pathlib import Path

import torch

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
