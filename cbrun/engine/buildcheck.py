"""`cbrun validate --build`: the model built and compiled as training would, and the data
checked against it, without a run directory or a single step: a wrong input shape, too
few output units or a loss the outputs cannot take are found in seconds, not after the
data has loaded and the first epoch has begun."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import keras

from cbrun.config.root import RunConfig
from cbrun.engine.datacheck import check_data_fits
from cbrun.engine.model import build_model, compile_model
from cbrun.engine.sources import load_splits
from cbrun.errors import ConfigError, Problem


def _shapes(tensors: list[Any]) -> list[list[int | None]]:
    return [list(t.shape) for t in tensors]


def build_check(config: RunConfig, config_dir: Path) -> dict[str, Any]:
    """What was built: inputs' and outputs' shapes and the parameter count. ConfigError
    (problems located in the config) when the model, its compile or the data fit fails."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_dtype_policy(config.compile.mixed_precision or "float32")
    # A source that caches to disk (images) gets a folder that goes away with the check.
    scratch = Path(tempfile.mkdtemp(prefix="cbrun-build-"))
    try:
        splits = load_splits(config.data, config_dir, scratch, seed=config.seed)
        try:
            model = build_model(config, config_dir)
        except (ValueError, TypeError) as exc:  # Keras refusing the layers it was given
            raise ConfigError([Problem(("model",), f"Keras could not build the model: "
                                                   f"{str(exc).strip().splitlines()[0]}")]) \
                from None
        check_data_fits(config, splits, model)
        compile_model(model, config, 1)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"inputs": _shapes(model.inputs), "outputs": _shapes(model.outputs),
            "parameters": int(model.count_params()), "backend": keras.backend.backend()}
