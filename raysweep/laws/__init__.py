"""The paper's laws: their catalogue, the fitter, a study's fits, and the distillation boundary.
Plain numpy and scipy: no torch, no Ray."""
