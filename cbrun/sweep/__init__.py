"""`cbrun sweep`: hyperparameter search on Optuna; each trial an ordinary cbrun run."""
