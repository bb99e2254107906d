"""Training one model: the DeiT family (models), eq. 3 and attention losses (losses), tensor
augmentation (augment), settings with the paper's Table 3 (settings), the one loop (loop)."""
