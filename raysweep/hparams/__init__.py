"""The hyper-parameter search per model size: its plain-Python half (space) and its Optuna-on-Tune
half (search)."""
