"""Running trials: one trial end to end without Ray (trial), and on Ray Tune (executor), through
the Ray edge every Tune run shares (cluster)."""
