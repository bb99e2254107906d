"""Adaptive rounds (loop) that place extra trials where the distillation boundary is still
uncertain (choice, design, proposals); `python -m raysweep.adaptive` is __main__."""
