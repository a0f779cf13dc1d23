"""New data of a run's kind (`cbrun evaluate --data`, `cbrun predict INPUT`), mapped as
the run mapped its training data: a table through the vocabularies and classes saved in
runs/<id>/data/table.json, image folders through data/classes.json, npz arrays under the
names the run's config gives. Nothing is learned again from the new file: a category the
training rows never showed maps to 0, the id training gave unknown values.

What training checks in its data is checked here too, each a one-line error naming the
file: no rows, text where the run had numbers, and (`check_fits`, once the model is
loaded) the width and kind of the inputs and the range of the labels against the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cbrun.config.data.images import EXTENSIONS, image_files, list_images
from cbrun.engine.sources import ImageFiles, Split, saved_artifacts
from cbrun.errors import UsageError
from cbrun.run.handle import OpenRun
from cbrun.suggest import did_you_mean


@dataclass
class Inputs:
    """Samples to predict: `x` as the model takes it, `ids` naming each sample for the
    output (the image file, else the row number from 1), `notes` for the user."""

    x: Any
    ids: list[str]
    notes: list[str]
    # `predict --keep`: columns of a table input passed through as read, {name: values}.
    kept: dict[str, np.ndarray] | None = None


def _source(run: OpenRun) -> str:
    source = run.config.data.source
    if source in ("keras", "python"):
        raise UsageError(f"{run.run_dir} trained on `source: {source}` data, which has no file "
                         "kind of its own; evaluate its splits with --split, or give data "
                         "through the Python API")
    return source


def _exists(path: Path, what: str) -> Path:
    if not path.exists():
        raise UsageError(f"{what} {path} does not exist")
    return path


# --- tables ---------------------------------------------------------------------------

def table_artifacts(run) -> Any:
    """The run's vocabularies and statistics (data/table.json), without which no table can
    be mapped as training mapped it."""
    artifacts = saved_artifacts(run.run_dir).get("table.json")
    if artifacts is None:
        raise UsageError(f"{run.run_dir}/data/table.json is missing: the run's vocabularies "
                         "are needed to map a table as training did")
    return artifacts


def _table(run: OpenRun, path: Path, labels: bool, keep: tuple[str, ...] = ()):
    from cbrun.data.tables import TableProblem, encode_table

    cfg = run.config.data
    artifacts = table_artifacts(run)
    try:
        table = cfg.read(_exists(path, "the table"))
    except (ValueError, OSError) as exc:
        raise UsageError(f"{path} is not a readable {cfg.source} table: "
                         f"{str(exc).strip().splitlines()[0]}") from None
    wanted = check_columns(path, table.column_names, artifacts, cfg, labels, keep)
    if table.num_rows == 0:
        raise UsageError(f"{path} has no rows, only its header: nothing to "
                         f"{'evaluate' if labels else 'predict'}")
    from cbrun.data.tables import _check_present

    try:
        _check_present(table, wanted, path.name, ("data",))
    except TableProblem as exc:
        raise UsageError(str(exc)) from None
    _numbers_where_trained(table, artifacts, path, wanted, cfg.source)
    try:
        x, y = encode_table(table, artifacts, path.name, labels=labels)
    except TableProblem as exc:
        raise UsageError(str(exc)) from None
    return x, y, table.num_rows, unseen_notes(table, artifacts), \
        {c: _as_read(table.column(c)) for c in keep}


def unseen_notes(table, artifacts: dict, known: dict[str, set] | None = None) -> list[str]:
    """A note for each category column holding values training never showed. `known`:
    the values already noted, per column (a table read a batch at a time)."""
    notes = []
    for column, vocab in artifacts["vocabularies"].items():
        seen = set(vocab)
        if known is not None:
            seen |= known.setdefault(column, set())
        unseen = sorted({v for v in table.column(column).to_pylist() if v not in seen})
        if known is not None:
            known[column].update(unseen)
        if unseen:
            notes.append(f"column {column!r}: {', '.join(map(repr, unseen[:5]))}"
                         f"{', ...' if len(unseen) > 5 else ''} never appeared in training; "
                         "mapped to the unknown id 0, as training maps them")
    return notes


def check_columns(path: Path, columns: list[str], artifacts: dict, cfg, labels: bool,
                  keep: tuple[str, ...]) -> list[str]:
    """The columns a run's model needs from a new table (and --keep's) are there, and no
    column it never trained on when it took every column: the columns it reads."""
    groups = artifacts["features"]
    features = [c for g in (groups.values() if isinstance(groups, dict) else [groups])
                for c in g]
    wanted = features + (artifacts["labels"] if labels else [])
    missing = [c for c in wanted if c not in columns]
    if missing:
        hint = "".join(did_you_mean(c, columns) for c in missing[:1])
        raise UsageError(f"{path.name} lacks the column{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(map(repr, missing))} that the run "
                         f"{'evaluates with' if labels else 'predicts from'}{hint}; its columns: "
                         f"{', '.join(columns)}")
    unknown = [c for c in keep if c not in columns]
    if unknown:
        raise UsageError(f"--keep: {path.name} has no column{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}{did_you_mean(unknown[0], columns)}; "
                         f"its columns: {', '.join(columns)}")
    if cfg.features is None:  # every other column was an input: one more would be too
        extra = [c for c in columns if c not in features and c not in artifacts["labels"]
                 and c not in keep]
        if extra:
            them = 'them' if len(extra) > 1 else 'it'
            passed = f", or pass {them} through with --keep {','.join(extra)}" \
                if not labels else ""
            raise UsageError(f"{path.name} has column{'s' if len(extra) > 1 else ''} "
                             f"{', '.join(map(repr, extra))} the run never trained on (its "
                             f"inputs: {', '.join(features)}); drop {them}{passed}")
    return wanted


def _as_read(column) -> np.ndarray:
    """A table column's values as Python objects (ints stay ints, a missing value None),
    one per row, whatever they hold."""
    values = np.empty(len(column), dtype=object)
    for i, value in enumerate(column.to_pylist()):
        values[i] = value
    return values


def _numbers_where_trained(table, artifacts: dict, path: Path, wanted: list[str],
                           source: str) -> None:
    """A column the run read as numbers (no vocabulary, no classes, no text) must hold
    numbers: the reader makes a column text for a single word in it."""
    from cbrun.data.tables import _is_text

    mapped = {*artifacts["vocabularies"], *artifacts["classes"], *artifacts.get("text", [])}
    for column in wanted:
        if column in mapped or not _is_text(table.column(column)):
            continue
        for row, value in enumerate(table.column(column).to_pylist()):
            try:
                float(value)
            except (TypeError, ValueError):
                where = f"line {row + 2}" if source == "csv" else f"row {row + 1}"
                raise UsageError(f"column {column!r} of {path} holds text ({value!r} at "
                                 f"{where}), but the run trained on numbers in it") from None


# --- images ---------------------------------------------------------------------------

def _streamed(cfg, paths: list[str]) -> ImageFiles:
    return ImageFiles(np.array(paths, dtype=str), tuple(cfg.image_size), cfg.channels)


def _class_names(run: OpenRun) -> list[str]:
    names = saved_artifacts(run.run_dir).get("classes.json")
    if names is None:
        raise UsageError(f"{run.run_dir}/data/classes.json is missing: the run's class names "
                         "are needed to map class folders as training did")
    return list(names)


def _labelled_images(run: OpenRun, folder: Path) -> Split:
    classes = _class_names(run)
    if not _exists(folder, "the image folder").is_dir():
        raise UsageError(f"{folder} is a file; --data takes a folder of class folders, as "
                         "the run trained on")
    names, files = list_images(folder)
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise UsageError(f"{folder} has class folder{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)} the run never trained on (its classes: "
                         f"{', '.join(classes)})")
    if not files:
        raise UsageError(f"{folder} holds no images in class folders ({', '.join(EXTENSIONS)})")
    labels = np.array([classes.index(names[i]) for _, i in files], dtype=np.int32)
    return Split(_streamed(run.config.data, [str(f) for f, _ in files]), labels)


def _unlabelled_images(run: OpenRun, path: Path) -> Inputs:
    _exists(path, "the input")
    # A folder is read as training reads a class folder: hidden files (.DS_Store, macOS's
    # ._name copies) are no images.
    files = [path] if path.is_file() else image_files(path)
    if not files or files[0].suffix.lower() not in EXTENSIONS:
        raise UsageError(f"{path} is no image and holds none ({', '.join(EXTENSIONS)})")
    from cbrun.config.data.images import image_problem

    for file in files:
        problem = image_problem(file)
        if problem:
            raise UsageError(f"{file} is {problem}; remove or replace it")
    images = _streamed(run.config.data, [str(f) for f in files])
    return Inputs(images, [str(f) for f in files], [])


# --- arrays ---------------------------------------------------------------------------

def _npz(run: OpenRun, path: Path, labels: bool):
    cfg = run.config.data
    x_names = getattr(cfg, "x", "x")
    y_names = getattr(cfg, "y", "y")
    try:
        archive = np.load(_exists(path, "the array file"), allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UsageError(f"{path} is not a .npz archive: {exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):  # a .npy holds one bare array
        raise UsageError(f"{path} is a single array (.npy), not a .npz archive of named "
                         f"arrays; save it with np.savez({path.stem}.npz, {x_names}=array)")
    with archive:
        def pick(names):
            if isinstance(names, str):
                return _array(archive, names, path)
            return {key: _array(archive, name, path) for key, name in names.items()}

        return pick(x_names), pick(y_names) if labels else None


def _array(archive, name: str, path: Path) -> np.ndarray:
    if name not in archive.files:
        raise UsageError(f"{path.name} has no array {name!r}{did_you_mean(name, archive.files)}"
                         f"; it has: {', '.join(archive.files) or 'no arrays'}")
    value = archive[name]
    return value.astype("float32") if value.dtype.kind == "f" else value


def _count(x: Any) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def _npz_count(path: Path, x: Any) -> int:
    """How many samples the arrays hold: the same number in each, and at least one."""
    arrays = x if isinstance(x, dict) else {"x": x}
    counts = {name: len(value) if value.ndim else 0 for name, value in arrays.items()}
    if len(set(counts.values())) > 1:
        raise UsageError(f"{path}: the input arrays hold different numbers of samples ("
                         + ", ".join(f"{k}: {v}" for k, v in counts.items()) + ")")
    count = next(iter(counts.values()))
    if count == 0:
        raise UsageError(f"{path} holds no samples (its arrays have 0 rows)")
    return count


def check_fits(name: str, split: Split, run: OpenRun, model: Any) -> None:
    """The samples (and labels) against the loaded model, as training checks its splits."""
    from cbrun.engine.datacheck import file_problems

    problems = file_problems(name, split, run.config, model)
    if problems:
        raise UsageError("; ".join(problems))


# --- what the commands call ---------------------------------------------------------------

def labelled(run: OpenRun, path: Path) -> tuple[Split, list[str]]:
    """`evaluate --data PATH`: the file as a split with its labels, and notes."""
    source = _source(run)
    if source in ("csv", "parquet"):
        x, y, _, notes, _ = _table(run, path, labels=True)
        return Split(x, y), notes
    if source == "images":
        return _labelled_images(run, path), []
    x, y = _npz(run, path, labels=True)
    if _npz_count(path, x) != _count(y):
        raise UsageError(f"{path.name} holds {_count(x)} inputs but {_count(y)} labels")
    return Split(x, y), []


def unlabelled(run: OpenRun, path: Path, keep: tuple[str, ...] = ()) -> Inputs:
    """`predict INPUT`: the samples, named for the output; `keep`: columns of a table input
    to pass through."""
    source = _source(run)
    if source in ("csv", "parquet"):
        x, _, rows, notes, kept = _table(run, path, labels=False, keep=keep)
        return Inputs(x, [str(i) for i in range(1, rows + 1)], notes, kept)
    if keep:
        raise UsageError(f"--keep passes columns of a table through; {run.run_dir} predicts "
                         f"from {source} data, which has no columns")
    if source == "images":
        return _unlabelled_images(run, path)
    x, _ = _npz(run, path, labels=False)
    return Inputs(x, [str(i) for i in range(1, _npz_count(path, x) + 1)], [])
