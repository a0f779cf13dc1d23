"""The callback list of a run: the user's, built from their specs, plus cbrun's own.

A spec (cbrun/callbacks/, lower floor) builds a plain Keras callback itself (`build`); the
Keras classes cbrun writes for a spec (the guarded ModelCheckpoint, the TensorBoard whose
histograms are computed in NumPy, PredictionSamples) live here and are found through
BUILDERS, as data loaders are found through cbrun.engine.sources.LOADERS.

Each callback travels with the spec it was built from, as a `Bound` pair: everything the
run does with a callback beyond handing it to Keras (its state, its messages, its stop) is
asked of its spec. See docs/ARCHITECTURE.md, "Adding a callback".

Order matters. Keras calls callbacks in list order, so:
  0. RunGuard before all: a link planted in the run directory while it trains is found
     before any callback writes through it;
  1. LearningRateLog first of the others: every later callback (CSVLogger, TensorBoard) sees
     `learning_rate`, the rate used during the epoch, before ReduceLROnPlateau changes it;
  2. the user's callbacks, in the order of the file;
  3. cbrun's log.csv writer (unless the user's CSVLogger already writes log.csv);
  4. the NaN guard, RunRecorder and the StateKeeper, after everything that changes state
     this epoch;
  5. the progress display, so it can report what the others did;
  6. SafeStop last: a Ctrl-C or SIGTERM stops the run at the next batch or epoch boundary,
     after the epoch's state is written when it came during that epoch's end.
"""

from __future__ import annotations

import importlib
from typing import Any

from cbrun.callbacks.base import CallbackSpec
from cbrun.config.base import BuildContext
from cbrun.config.root import RunConfig
from cbrun.engine.callbacks.bound import Bound
from cbrun.errors import ConfigError

# type -> "module:function(spec, ctx)" for the specs whose Keras class cbrun writes.
BUILDERS = {
    "ModelCheckpoint": "cbrun.engine.callbacks.checkpoint:build",
    "TensorBoard": "cbrun.engine.callbacks.tensorboard:build",
    "PredictionSamples": "cbrun.engine.callbacks.prediction_samples:build",
}

__all__ = ["BUILDERS", "Bound", "build_callbacks", "build_one", "every_batch", "judge_of",
           "stopped_epoch"]


def build_one(spec: CallbackSpec, ctx: BuildContext) -> Any:
    """The Keras callback of one spec: cbrun's own class where BUILDERS names one, else what
    the spec builds (a Keras callback, a user's class, a plugin's)."""
    target = BUILDERS.get(spec.type)
    if target is None:
        return spec.build(ctx)
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(spec, ctx)


def build_callbacks(config: RunConfig, ctx: BuildContext) -> list[Bound]:
    """Every tracked callback (`RunConfig.tracked_callbacks`), built."""
    built = []
    for index, spec in enumerate(config.tracked_callbacks()):
        try:
            built.append(Bound(spec, build_one(spec, ctx)))
        except ConfigError as exc:
            for problem in exc.problems:
                problem.loc = ("callbacks", index, *problem.loc)
            raise
    return built


def every_batch(bound: list[Bound]) -> list[str]:
    """The callbacks that need every batch (a batch hook, a batch-level frequency)."""
    return [spec.type for spec, callback in bound if spec.batch_level(callback)]


def judge_of(bound: list[Bound], monitor: str) -> Bound | None:
    return next((pair for pair in bound if pair.spec.judges(monitor)), None)


def stopped_epoch(bound: list[Bound]) -> int | None:
    return next((epoch for spec, callback in bound
                 if (epoch := spec.stopped_epoch(callback)) is not None), None)
