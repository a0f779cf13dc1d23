"""Reading a run's `log.csv` (Keras's CSVLogger format) without pandas or TensorFlow.

Keras writes `epoch` (0-based) and then the logged metrics sorted by name, one row per
epoch, `NA` where a key was missing that epoch. Humans count epochs from 1 (Keras prints
"Epoch 3/30"), so `TrainingLog.epochs` holds `epoch + 1`.

The reader is forgiving because its callers draw whatever makes sense: foreign CSVs with
other columns, other separators, `nan`/`inf` cells (kept as gaps), a `step` column instead
of `epoch` (used as x as it is), or no such column at all (rows are then numbered 1..n).
What cannot be drawn raises `LogError` with a message; it is bad input, so it exits 2 like
a missing file.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cbrun.config import keras_api
from cbrun.errors import EXIT_USAGE, CbrunError, UsageError
from cbrun.run.rundir import LOG_FILE, RUN_FILE

EPOCH_COLUMN = "epoch"
# Counters that foreign loggers (TensorBoard exports, hand-written loops) use instead of
# `epoch`: taken as x when there is no epoch column, and never drawn as a metric.
STEP_COLUMNS = ("step", "global_step", "iteration")
LEARNING_RATE_COLUMNS = ("learning_rate", "lr")
VAL_PREFIX = "val_"

_SEPARATORS = ",;\t|"
# Cells that mean "no value": Keras writes NA for a key missing that epoch.
_MISSING = {"", "na", "n/a", "nan", "none", "null", "-"}
_SNIFF_BYTES = 16_384
_NOT_REGULAR = "not a regular file, but a pipe, a device or a socket"
# Suffixes of files that are never tabular, with what to call them in a message. Other
# suffixes (.txt, .log, .tsv, none) may well hold a CSV and are read.
_NOT_TABULAR = {
    **dict.fromkeys(("png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff", "svg",
                     "pdf", "eps", "ps", "pgf"), "an image"),
    **dict.fromkeys(("npz", "npy"), "a NumPy array file"),
    **dict.fromkeys(("keras", "h5", "hdf5", "pb", "ckpt", "index"), "a model or weights file"),
    **dict.fromkeys(("json", "yaml", "yml", "toml"), "a structured text file"),
    **dict.fromkeys(("pkl", "pickle", "zip", "gz", "tgz", "tar", "bz2", "xz"), "an archive"),
}


class LogError(CbrunError):
    """A file that exists but holds nothing that can be drawn. Bad input, like a missing
    file: both exit 2."""

    exit_code = EXIT_USAGE


class NoRowsError(LogError):
    """A log with no epoch yet (an empty file, a header only, a run directory without its
    log.csv): a running training may still write one, so `--watch` waits for it."""


class NotALogError(LogError):
    """A file that is not a CSV at all (an image, an archive, a model), named in `reason`."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path} is not a CSV log ({reason}): name a log.csv or a run "
                         "directory")


@dataclass(frozen=True)
class Family:
    """Columns drawn on one panel: a metric with its `val_` twin, or the learning rate alone.

    name: what `--metrics` selects and the panel title (`loss`, `accuracy`, ...).
    columns: the CSV columns in the panel, training before validation.
    log_scale: True for learning rates, which change by factors, not by steps.
    """

    name: str
    columns: tuple[str, ...]
    log_scale: bool = False


@dataclass(frozen=True)
class TrainingLog:
    """One CSV log, parsed.

    epochs: the x of each row, sorted, unique: the 1-based epoch, else the `step` column
        as written, else the row number from 1.
    columns: the numeric columns besides the x column, in file order.
    values: per column, one float per row; missing or non-finite cells are `nan`.
    has_epoch_column: False when the file has no `epoch`.
    skipped: names of columns that were left out: words (a foreign CSV's notes), counters,
        and repeated names.
    x_name: what `epochs` counts, for axis labels: `epoch`, the step column's name, or `row`.
    """

    path: Path
    epochs: tuple[int, ...]
    columns: tuple[str, ...]
    values: dict[str, tuple[float, ...]] = field(repr=False)
    has_epoch_column: bool = True
    skipped: tuple[str, ...] = ()
    x_name: str = EPOCH_COLUMN

    def __len__(self) -> int:
        return len(self.epochs)

    def value_at(self, column: str, epoch: int) -> float:
        """The value of `column` at a 1-based `epoch`, `nan` when there is none."""
        if column not in self.values or epoch not in self.epochs:
            return math.nan
        return self.values[column][self.epochs.index(epoch)]

    def families(self) -> list[Family]:
        return metric_families(self.columns)


def is_learning_rate(column: str) -> bool:
    return column in LEARNING_RATE_COLUMNS


def metric_families(columns: tuple[str, ...] | list[str]) -> list[Family]:
    """Group columns into panels: losses first, then metrics in file order, the LR last."""
    present = set(columns)
    families: dict[str, list[str]] = {}
    for column in columns:
        base = column.removeprefix(VAL_PREFIX)
        # `val_foo` joins `foo` only when `foo` is logged too; otherwise it stands alone.
        if column.startswith(VAL_PREFIX) and base not in present:
            base = column
        families.setdefault(base, [])
        families[base].append(column)

    def order(name: str) -> tuple[int, int]:
        if name == "loss":
            return (0, 0)
        if is_learning_rate(name):
            return (2, 0)
        return (1, list(families).index(name))

    result = []
    for name in sorted(families, key=order):
        cols = sorted(families[name], key=lambda c: c.startswith(VAL_PREFIX))
        result.append(Family(name, tuple(cols), log_scale=is_learning_rate(name)))
    return result


def resolve_log_path(path: Path) -> Path:
    """A CSV path, or a run directory holding `log.csv`; `UsageError` when neither exists."""
    if path.is_dir():
        candidate = path / LOG_FILE
        if candidate.exists() and not candidate.is_file():
            raise NotALogError(candidate, _NOT_REGULAR)
        if not candidate.is_file():
            if (path / RUN_FILE).is_file():
                # A run that has not finished its first epoch (or never will: it failed).
                raise NoRowsError(f"{path} has no {LOG_FILE}: no epoch has been logged")
            if _holds_runs(path):
                raise UsageError(
                    f"{path} holds runs but is not one: name a run (`cbrun runs {path}` "
                    f"lists them), or several to compare them"
                )
            raise UsageError(f"{path} has no {LOG_FILE}: is it a run directory?")
        return candidate
    if not path.exists():
        raise UsageError(f"no such file or directory: {path}{_did_you_mean(path)}")
    return path


def _holds_runs(folder: Path) -> bool:
    try:
        return any((child / LOG_FILE).is_file() for child in folder.iterdir())
    except OSError:
        return False


def _did_you_mean(path: Path) -> str:
    import difflib

    parent = path.parent if str(path.parent) else Path(".")
    try:
        names = [p.name for p in parent.iterdir()]
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    return f" (did you mean {parent / close[0]}?)" if close else ""


def not_a_log(path: Path) -> str | None:
    """Why `path` cannot be a CSV log (its suffix, or binary content), None when it may be.
    A CSV read as text would otherwise turn a PNG into columns of garbage."""
    kind = _NOT_TABULAR.get(path.suffix.lower().lstrip("."))
    if kind:
        return f"{kind}, {path.suffix}"
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError:
        return None  # read_log says why it cannot be read
    # No text format puts NUL bytes in a CSV; images, archives and HDF5 all have them.
    return "binary content" if b"\0" in head else None


def read_log(path: Path) -> TrainingLog:
    """Parse a CSV log. Raises `UsageError` for a missing path, `NotALogError` for a file
    that is no CSV, `NoRowsError` for one with no rows yet, `LogError` for one with no
    numeric column."""
    path = resolve_log_path(Path(path))
    if not path.is_file():  # before any open: a FIFO would block it, a device never end
        raise NotALogError(path, _NOT_REGULAR)
    reason = not_a_log(path)
    if reason:
        raise NotALogError(path, reason)
    try:
        # utf-8-sig drops a BOM (spreadsheets add one); bad bytes must not crash a plot.
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
            delimiter = sniff_delimiter(fh.read(_SNIFF_BYTES))
            fh.seek(0)
            # Row by row: a long log costs its numbers, not its text several times over.
            rows = (row for row in csv.reader(fh, delimiter=delimiter)
                    if len(row) > 1 or (row and row[0].strip()))
            header = next(rows, None)
            if header is None:
                raise NoRowsError(f"{path} is empty: no epoch has been logged yet")
            header = [name.strip() for name in header]
            return _parse(path, header, rows, delimiter)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except csv.Error as exc:
        raise LogError(f"{path} is not a readable CSV file: {exc}") from None


def sniff_delimiter(sample: str) -> str:
    """The separator of a CSV sample; ',' when the file has a single column."""
    header = next((line for line in sample.splitlines() if line.strip()), "")
    try:
        found = csv.Sniffer().sniff(sample, delimiters=_SEPARATORS).delimiter
    except csv.Error:
        found = None
    if found and found in header:
        return found
    # The sniffer fails on a header-only file; the header's most frequent separator will do.
    counts = {sep: header.count(sep) for sep in _SEPARATORS}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def parse_cell(cell: str, decimal_comma: bool = False) -> float | None:
    """A float, `nan` for a missing or non-finite value, None for text that is no number."""
    text = cell.strip()
    if text.lower() in _MISSING:
        return math.nan
    if decimal_comma:
        text = text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        return None
    # inf means a diverged metric; drawn as a gap, it cannot squash the rest of the axis.
    return value if math.isfinite(value) else math.nan


def _parse(path: Path, header: list[str], body: Iterable[list[str]],
           delimiter: str) -> TrainingLog:
    # With ';' or tab separators, European spreadsheets write 0,5 for 0.5.
    decimal_comma = delimiter != ","
    width = len(header)
    parsed: list[list[float | None]] = []
    for row in body:
        row = (row + [""] * width)[:width]
        parsed.append([parse_cell(cell, decimal_comma) for cell in row])
    if not parsed:
        raise NoRowsError(f"{path} has a header but no rows: no epoch has been logged yet")

    x_index, x_name = _x_column(header)
    if x_index is None:
        # Rows of words only (a header repeated by an appending logger) are no data.
        kept = [r for r in parsed if any(c is not None for c in r)]
        epochs = list(range(1, len(kept) + 1))
        if not kept:
            raise LogError(f"{path} has no numeric column to plot (columns: {', '.join(header)})")
    else:
        # Keras's epoch is 0-based and people count from 1; a step is shown as written.
        offset = 1 if x_name == EPOCH_COLUMN else 0
        epochs, kept = _by_x(parsed, x_index, offset)
        if not kept:
            raise LogError(f"{path}: the {header[x_index]!r} column holds no "
                           f"{x_name} numbers")

    numeric, skipped = [], []
    seen: set[str] = set()
    for i, name in enumerate(header):
        if i == x_index:
            continue
        cells = [r[i] for r in kept]
        numbers = sum(1 for c in cells if c is not None and not math.isnan(c))
        words = sum(1 for c in cells if c is None)
        if not name and not numbers and not words:
            continue  # a trailing separator: a column of nothing, not an empty panel
        if (name and name in seen) or _is_counter(name):
            # A second `epoch` or `loss` would draw the counter, or one name twice.
            skipped.append(name)
            continue
        # Mostly words (a timestamp, a note) is not a metric; a stray word in a metric
        # column becomes a gap like NA, and an all-NA column stays (an empty panel).
        if words <= numbers:
            numeric.append((i, name or f"column {i + 1}"))
            seen.add(name)
        elif name:
            skipped.append(name)
    if not numeric:
        raise LogError(
            f"{path} has no numeric column to plot (columns: {', '.join(header) or 'none'})"
        )
    values = {name: tuple(_nan(r[i]) for r in kept) for i, name in numeric}
    return TrainingLog(
        path=path,
        epochs=tuple(epochs),
        columns=tuple(name for _, name in numeric),
        values=values,
        has_epoch_column=x_name == EPOCH_COLUMN,
        skipped=tuple(skipped),
        x_name=x_name,
    )


def _x_column(header: list[str]) -> tuple[int | None, str]:
    """(index, name) of the column that numbers the rows: `epoch`, else a step counter,
    else (None, "row")."""
    if EPOCH_COLUMN in header:
        return header.index(EPOCH_COLUMN), EPOCH_COLUMN
    for i, name in enumerate(header):
        if name.lower() in STEP_COLUMNS:
            return i, name
    return None, "row"


def _is_counter(name: str) -> bool:
    return name == EPOCH_COLUMN or name.lower() in STEP_COLUMNS


def _by_x(parsed: list[list[float | None]], x_index: int, offset: int):
    """Rows keyed by their whole x (+ `offset`); a later row for the same x wins (a log
    appended to after a restart repeats the epochs it redid)."""
    rows: dict[int, list[float | None]] = {}
    for row in parsed:
        raw = row[x_index]
        if raw is None or math.isnan(raw) or raw != int(raw):
            continue
        rows[int(raw) + offset] = row
    ordered = sorted(rows)
    return ordered, [rows[e] for e in ordered]


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def default_monitor(columns: tuple[str, ...] | list[str]) -> str | None:
    """What to mark as best when the run does not say: Keras's own default, `val_loss`,
    else `loss`."""
    for name in ("val_loss", "loss"):
        if name in columns:
            return name
    return None


def infer_mode(monitor: str, mode: str | None = None) -> str:
    """`min` or `max`: the given mode unless it is `auto`/missing, else the way the metric
    improves as Keras knows it (`r2_score` grows, `mae` shrinks; `val_` dropped). For a
    name Keras does not know (a renamed or foreign metric) it is guessed from the name:
    accuracy-like metrics grow, losses and errors shrink."""
    if mode in ("min", "max"):
        return mode
    direction = keras_api.metric_direction(monitor.removeprefix(VAL_PREFIX))
    if direction is not None:
        return "max" if direction == "up" else "min"
    name = monitor.lower()
    if any(word in name for word in ("acc", "auc", "precision", "recall", "f1", "iou")):
        return "max"
    return "min"


def best_epoch(log: TrainingLog, column: str, mode: str) -> tuple[int, float] | None:
    """The (1-based epoch, value) where `column` was best; the first one on ties, like
    Keras's EarlyStopping, which only moves on a strict improvement."""
    if column not in log.values:
        return None
    best: tuple[int, float] | None = None
    for epoch, value in zip(log.epochs, log.values[column], strict=True):
        if math.isnan(value):
            continue
        if best is None or (value < best[1] if mode == "min" else value > best[1]):
            best = (epoch, value)
    return best
