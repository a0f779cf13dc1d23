"""The sweep's sampler: trial k's draws come from (seed, k) alone.

A seeded sampler shared by every trial would hand out its draws in the order trials ask,
which differs between a run, a resumed run and several workers; Optuna also reseeds it in
each thread of `study.optimize(n_jobs=...)`. Here each trial gets a sampler of its own,
seeded from the sweep's seed and the trial's number (a retried trial keeps its first
number, and its parameters). TPE still reads the whole history from the storage.

Imported only where Optuna is installed (the study and the driver import it lazily).
"""

from __future__ import annotations

import threading
from typing import Any

import optuna
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler


def make_sampler(spec) -> BaseSampler:
    return PerTrialSampler(spec.sampler, spec.seed,
                           spec.grid_space() if spec.sampler == "grid" else {})


def _one(kind: str, seed: int | None, grid: dict[str, list[Any]]) -> BaseSampler:
    if kind == "grid":
        return GridSampler(grid, seed=seed)
    if kind == "random":
        return RandomSampler(seed=seed)
    return TPESampler(seed=seed)


class PerTrialSampler(BaseSampler):
    def __init__(self, kind: str, seed: int | None, grid: dict[str, list[Any]]):
        self.kind, self.seed, self.grid = kind, seed, grid
        self._samplers: dict[int, BaseSampler] = {}
        self._lock = threading.Lock()  # trials of several threads ask at once

    def _of(self, trial: optuna.trial.FrozenTrial) -> BaseSampler:
        number = first_number(trial)
        with self._lock:
            if number not in self._samplers:
                seed = None if self.seed is None else (self.seed * 1_000_003 + number) % 2**32
                self._samplers[number] = _one(self.kind, seed, self.grid)
            return self._samplers[number]

    def infer_relative_search_space(self, study, trial):
        return self._of(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._of(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._of(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self._of(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._of(trial).after_trial(study, trial, state, values)
        with self._lock:
            self._samplers.pop(first_number(trial), None)

    def reseed_rng(self) -> None:
        """Each trial's draws are seeded already; study.optimize's reseeding would make them
        depend on the thread."""


def first_number(trial) -> int:
    """The number a trial had before Optuna retried it (a FrozenTrial): its own, or that of
    the trial its retries go back to. The run directory and the table use this number."""
    first = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)
    return trial.number if first is None else first
