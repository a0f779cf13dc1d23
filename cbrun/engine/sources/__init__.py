"""Loading the data a config declares: one module per source, each with
`load(cfg, config_dir) -> Splits`.

A Split holds its samples in memory (arrays, or {name: array} for named inputs and
outputs), as image files to stream, or as a tf.data.Dataset a Python loader returned.
What a source learned (class names, vocabularies) travels in `Splits.artifacts` and is
saved under runs/<id>/data/, where `data_for_run` finds it again."""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LOADERS = {
    "digits": "cbrun.engine.sources.digits",
    "npz": "cbrun.engine.sources.npz",
    "csv": "cbrun.engine.sources.table",
    "parquet": "cbrun.engine.sources.table",
    "images": "cbrun.engine.sources.images",
    "keras": "cbrun.engine.sources.kerasds",
    "python": "cbrun.engine.sources.python",
}
DATA_DIR = "data"  # inside the run directory
FRACTION_FILE = "fraction.json"  # in the run's data/: the rows data.fraction kept


@dataclass
class ImageFiles:
    """Image files to decode on the fly: paths in a stable order, and how to decode.
    `raw`: the files hold decoded float32 pixels (the `cache: disk` copies)."""

    paths: np.ndarray  # of str
    size: tuple[int, int]
    channels: int
    raw: bool = False

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def encoded(self) -> np.ndarray:
        """The paths as bytes, what TensorFlow reads: a name of bytes that are not UTF-8 (a
        folder named on another system) is a lone surrogate in Python, which TensorFlow
        cannot turn into a string tensor."""
        return np.array([os.fsencode(p) for p in self.paths], dtype=object)

    def __getitem__(self, rows: Any) -> np.ndarray:
        """The images at `rows` (an index array), decoded: a callback that shows a few
        samples (PredictionSamples) gets them without decoding the whole split."""
        from cbrun.engine.sources.decode import read_image

        return np.stack([read_image(os.fsencode(path), self).numpy()
                         for path in np.atleast_1d(self.paths[rows])])


@dataclass
class Split:
    x: Any = None  # ndarray | {name: ndarray} | ImageFiles | a streamed table's ColumnGroup(s)
    y: Any = None  # ndarray | {name: ndarray}
    dataset: Any = None  # a tf.data.Dataset of (x, y) batches, used as given
    # What a table's training rows hold (stats.json: each column's mean and variance, its
    # values by frequency): the `adapt: true` layers are set from it.
    stats: dict | None = None

    def __len__(self) -> int:
        if self.dataset is not None:
            raise TypeError("a dataset split has batches, not a sample count")
        first = next(iter(self.x.values())) if isinstance(self.x, dict) else self.x
        return len(first)

    @property
    def streamed(self) -> bool:
        return isinstance(self.x, ImageFiles) or self.table is not None

    @property
    def images(self) -> ImageFiles | None:
        return self.x if isinstance(self.x, ImageFiles) else None

    @property
    def table(self):
        """The streamed table's rows (cbrun.data.stream.TableRows), or None."""
        from cbrun.data.stream import rows_of

        return None if self.dataset is not None or self.x is None else rows_of(self.x)


@dataclass
class Splits:
    train: Split
    validation: Split | None = None
    test: Split | None = None
    artifacts: dict[str, Any] = field(default_factory=dict)  # file name -> JSON value
    notes: list[str] = field(default_factory=list)  # how the data is read, for the first lines

    def named(self) -> dict[str, Split]:
        """{split name: split} of the splits this source has."""
        return {name: split for name, split in (("train", self.train),
                                                 ("validation", self.validation),
                                                 ("test", self.test)) if split is not None}

    @property
    def class_names(self) -> list[str] | None:
        """The names of class ids 0, 1, ... where the source knows them: an image folder's
        class folders, the classes of a table's one string label."""
        if "classes.json" in self.artifacts:
            return list(self.artifacts["classes.json"])
        table = self.artifacts.get("table.json")
        if table and len(table["labels"]) == 1:
            names = table["classes"].get(table["labels"][0])
            return list(map(str, names)) if names else None
        return None

    def warnings(self, data_cfg: Any) -> list[str]:
        """Whether the held-out splits represent training (cbrun/data/balance.py)."""
        from cbrun.data.balance import split_warnings
        from cbrun.data.splits import SPLIT_FILE

        labels = {name: split.y for name, split in self.named().items()
                  if split.dataset is None and not isinstance(split.y, dict)}
        return split_warnings(labels, data_cfg, self.artifacts.get(SPLIT_FILE),
                              self.class_names)

    def save(self, run_dir: Path) -> list[Path]:
        """Write what preprocessing learned under runs/<id>/data/ (JSON, one file each)."""
        written = []
        for name, value in self.artifacts.items():
            path = run_dir / DATA_DIR / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json_text(value), encoding="utf-8")
            written.append(path)
        return written


def json_text(value: Any) -> str:
    """JSON as UTF-8 text, names as they are; a name that is not text (a folder name of
    bytes that are not UTF-8, a lone surrogate in Python) escaped as \\udcff, which JSON
    reads back as the same name."""
    text = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, indent=2) + "\n"
    return text


def load_splits(data_cfg: Any, config_dir: Path, run_dir: Path | None = None, *,
                seed: int) -> Splits:
    """`run_dir`: where a source that caches on disk (images, `cache: disk`) keeps its copy;
    without one it streams. `seed`: the run's, which draws the held-out rows."""
    module = importlib.import_module(LOADERS[data_cfg.source])
    # A table reads what its run chose (streamed or whole); images cache in the run.
    if data_cfg.source in ("csv", "parquet") or getattr(data_cfg, "cache", None) == "disk":
        splits = module.load(data_cfg, config_dir, seed=seed, run_dir=run_dir)
    else:
        splits = module.load(data_cfg, config_dir, seed=seed)
    return _bare_labels(_share(splits, data_cfg.fraction, seed))


def first_batches(split: Split, batches: int, batch_size: int) -> Split:
    """The split's first `batches` batches (the rows in their order; a loader's dataset,
    its first batches, cached so that every epoch sees the same ones)."""
    from cbrun.data.splits import take

    if split.dataset is not None:
        return Split(dataset=split.dataset.take(batches).cache())
    rows = np.arange(min(len(split), batches * batch_size))
    if split.table is not None:
        from cbrun.data.stream import inputs_of, targets_of

        first = split.table.first(len(rows))
        return Split(x=inputs_of(first), y=targets_of(first), stats=split.stats)
    return Split(x=_rows(split, rows), y=None if split.y is None else take(split.y, rows),
                 stats=split.stats)


def _rows(split: Split, rows: np.ndarray):
    """The inputs of a split's `rows` (positions in its file order): an image folder's
    paths, a streamed table's rows (still read from its files), or the arrays' rows."""
    from dataclasses import replace

    from cbrun.data.splits import take

    if split.images is not None:
        return replace(split.x, paths=split.x.paths[rows])
    return take(split.x, rows)


def _share(splits: Splits, fraction: float, seed: int) -> Splits:
    """`data.fraction`: a seeded share of every split's rows (cbrun/data/splits.share)."""
    from cbrun.data.splits import share, take
    from cbrun.errors import RunError

    if fraction >= 1.0:
        return splits
    for index, (name, split) in enumerate(splits.named().items()):
        if split.dataset is not None:
            raise RunError(f"data.fraction: the {name} split is a tf.data.Dataset the loader "
                           "returned, whose rows cbrun cannot draw from; return arrays, or "
                           "take a share in the loader (dataset.take)")
        if split.table is not None:  # drawn row by row, as its held-out rows are
            from cbrun.data.rowsplit import Keep
            from cbrun.data.stream import inputs_of, targets_of

            kept = split.table.share(Keep(seed, fraction, index))
            if len(split.table) and not len(kept):
                raise _none_drawn(name, len(split.table), fraction)
            split.x, split.y = inputs_of(kept), targets_of(kept)
            continue
        labels = None if isinstance(split.y, dict) else split.y
        rows = share(len(split), fraction, seed, index, labels)
        split.x = _rows(split, rows)
        split.y = None if split.y is None else take(split.y, rows)
    splits.artifacts[FRACTION_FILE] = {"fraction": fraction, "rows": {
        name: len(split) for name, split in splits.named().items()}}
    return splits


def _none_drawn(name: str, rows: int, fraction: float):
    """A streamed split whose row-by-row draw kept none of its rows: training on nothing
    (or validating on nothing) would fail inside Keras, so it is refused before an epoch."""
    from cbrun.errors import ConfigError, Problem

    return ConfigError([Problem(
        loc=("data", "fraction"), given=fraction,
        message=f"draws none of the {rows:,} {name} rows of this streamed table (each row "
                f"is kept with probability {fraction:g})",
        hint=f"raise it (1/{rows:,} = {1 / rows:.2g} keeps one row on average; a few times "
             "that keeps some almost surely), or read the table whole (stream: false), "
             "where a share keeps at least one row of each split")])


def _bare_labels(splits: Splits) -> Splits:
    """Targets named for a model's only output ({answer: y}) as the bare array: Keras
    matches a dict of targets to outputs only when there are several (with one it tries
    to read the name as a number). The config check has made sure the name is that
    output's."""
    for split in splits.named().values():
        if isinstance(split.y, dict) and len(split.y) == 1:
            split.y = next(iter(split.y.values()))
    return splits


def saved_artifacts(run_dir: Path) -> dict[str, Any]:
    """What a run saved under data/ ({file name: JSON value}); empty when nothing."""
    folder = run_dir / DATA_DIR
    if not folder.is_dir():
        return {}
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def data_for_run(run: Any) -> tuple[Splits, dict]:
    """The splits of an opened run (cbrun.run.handle.OpenRun), rebuilt from its resolved
    config, and what it saved (class names, vocabularies) to map new inputs the same way
    (`cbrun.data.tables.encode_table` for tables; `classes.json` names the outputs of an
    image classifier)."""
    return (load_splits(run.config.data, run.config_dir, run.run_dir, seed=run.config.seed),
            saved_artifacts(run.run_dir))
