"""Backends run trials: `local` (Optuna in this process) and `ray` (Ray Tune workers)."""
