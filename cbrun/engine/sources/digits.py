"""The embedded 8x8 digits."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from cbrun.engine.sources import Splits
from cbrun.engine.sources.arrays import split_arrays


def load(cfg, config_dir: Path, *, seed: int) -> Splits:
    source = resources.files("cbrun.datasets").joinpath("digits.npz")
    with source.open("rb") as handle, np.load(handle) as archive:
        x = archive["x"].astype("float32")
        y = archive["y"].astype("int32")
    return split_arrays(cfg, x, y, seed=seed)
