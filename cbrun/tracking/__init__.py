"""Experiment tracking: MLflow and W&B runs that mirror a run directory (lower floor)."""
