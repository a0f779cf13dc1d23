"""`cbrun lr-find`: the config's model trained on its training data for a few hundred
batches while the learning rate grows exponentially from `low` to `high`, one loss per
batch (after Lightning's `lr_find` and fastai's `lr_find`).

The model, the data and the optimizer are the config's, built as `cbrun train` builds them
(seeded, adapted, compiled); only the learning rate is set before each batch. Nothing is
kept: what the data source writes while loading goes to a temporary folder, removed after.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import keras

from cbrun.config.root import RunConfig
from cbrun.engine.adapt import adapt_layers
from cbrun.engine.data import train_dataset, train_steps
from cbrun.engine.datacheck import check_data_fits
from cbrun.engine.model import build_model, compile_model
from cbrun.engine.sources import load_splits
from cbrun.engine.sources.images import images_named
from cbrun.plotting.lrcurve import DIVERGE, Curve, Smoother


def sweep(config: RunConfig, config_dir: Path, *, steps: int, low: float, high: float,
          progress: Callable[[int], None] = lambda _: None) -> Curve:
    """The loss at each rate of the sweep; it stops early where the loss diverges
    (cbrun/plotting/lrcurve.py)."""
    previous = keras.mixed_precision.dtype_policy()
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_dtype_policy(config.compile.mixed_precision or "float32")
    try:
        with tempfile.TemporaryDirectory(prefix="cbrun-lr-find-") as scratch:
            return _sweep(config, config_dir, Path(scratch), steps, low, high, progress)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def _sweep(config: RunConfig, config_dir: Path, scratch: Path, steps: int, low: float,
           high: float, progress: Callable[[int], None]) -> Curve:
    splits = load_splits(config.data, config_dir, scratch, seed=config.seed)
    model = build_model(config, config_dir)
    check_data_fits(config, splits, model)
    with images_named([splits.train]):
        adapt_layers(model, config, splits.train)
    compile_model(model, config, 1)  # one batch per call: a rate per batch
    batch_size = config.data.batch_size
    per_epoch = train_steps(splits.train, batch_size, config.fit.steps_per_epoch)
    dataset, order = train_dataset(splits.train, batch_size, config.seed,
                                   config.data.shuffle, per_epoch)
    growth = (high / low) ** (1 / max(steps - 1, 1))
    smoother, rates, losses, best = Smoother(), [], [], math.inf
    epoch = 0
    with images_named([splits.train]):
        while len(rates) < steps:
            if order is not None:
                order.set_epoch(epoch)  # each pass over the data in the order train uses
            # Another backend than TensorFlow takes the batches as NumPy arrays.
            batches = dataset if keras.backend.backend() == "tensorflow" \
                else dataset.as_numpy_iterator()
            for x, y in batches:
                rate = low * growth ** len(rates)
                model.optimizer.learning_rate = rate
                logs = model.train_on_batch(x, y, class_weight=config.fit.class_weight,
                                            return_dict=True)
                loss = float(logs["loss"])
                average = smoother.add(loss)
                rates.append(rate)
                losses.append(loss)
                progress(len(rates))
                if not math.isfinite(average) or average > DIVERGE * best:
                    return Curve(rates, losses, "diverged")
                best = min(best, average)
                if len(rates) == steps:
                    break
            epoch += 1
    return Curve(rates, losses, "done")
