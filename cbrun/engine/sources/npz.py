"""`.npz` archives: one array or {name: array} per x and y."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cbrun.engine.sources import Split, Splits
from cbrun.engine.sources.arrays import split_arrays


def _read(path: Path, cfg) -> tuple:
    with np.load(path, allow_pickle=False) as archive:
        def pick(names):
            if isinstance(names, str):
                return archive[names]
            return {key: archive[name] for key, name in names.items()}

        return pick(cfg.x), pick(cfg.y)


def load(cfg, config_dir: Path, *, seed: int) -> Splits:
    x, y = _read(config_dir / cfg.path, cfg)
    extra = {}
    for split in ("validation", "test"):
        path = getattr(cfg, f"{split}_path")
        if path:
            extra[split] = Split(*_read(config_dir / path, cfg))
    return split_arrays(cfg, x, y, **extra, seed=seed)
