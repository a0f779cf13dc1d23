"""Reading a run's `log.csv` (Keras's CSVLogger format) without pandas or TensorFlow.

Keras writes `epoch` (0-based) and then the logged metrics sorted by name, one row per
epoch, `NA` where a key was missing that epoch. Humans count epochs from 1 (Keras prints
"Epoch 3/30"), so `TrainingLog.epochs` holds `epoch + 1`.

The reader is forgiving because its callers draw whatever makes sense: foreign CSVs with
other columns, other separators, `nan`/`inf` cells (kept as gaps), or no epoch column at
all (rows are then numbered 1..n). What cannot be drawn raises `LogError` with a message.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from cbrun.errors import CbrunError, UsageError

LOG_NAME = "log.csv"
EPOCH_COLUMN = "epoch"
LEARNING_RATE_COLUMNS = ("learning_rate", "lr")
VAL_PREFIX = "val_"

_SEPARATORS = ",;\t|"
# Cells that mean "no value": Keras writes NA for a key missing that epoch.
_MISSING = {"", "na", "n/a", "nan", "none", "null", "-"}
_SNIFF_BYTES = 16_384


class LogError(CbrunError):
    """A CSV log that exists but holds nothing that can be drawn."""


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

    epochs: 1-based epoch per row, sorted, unique.
    columns: the numeric columns besides the epoch, in file order.
    values: per column, one float per row; missing or non-finite cells are `nan`.
    has_epoch_column: False when rows were numbered because the file has no `epoch`.
    skipped: names of non-numeric columns that were left out (a foreign CSV's notes).
    """

    path: Path
    epochs: tuple[int, ...]
    columns: tuple[str, ...]
    values: dict[str, tuple[float, ...]] = field(repr=False)
    has_epoch_column: bool = True
    skipped: tuple[str, ...] = ()

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
        candidate = path / LOG_NAME
        if not candidate.is_file():
            if _holds_runs(path):
                raise UsageError(
                    f"{path} holds runs but is not one: name a run (`cbrun runs {path}` "
                    f"lists them), or several to compare them"
                )
            raise UsageError(f"{path} has no {LOG_NAME}: is it a run directory?")
        return candidate
    if not path.exists():
        raise UsageError(f"no such file or directory: {path}{_did_you_mean(path)}")
    return path


def _holds_runs(folder: Path) -> bool:
    try:
        return any((child / LOG_NAME).is_file() for child in folder.iterdir())
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


def read_log(path: Path) -> TrainingLog:
    """Parse a CSV log. Raises `UsageError` for a missing path, `LogError` for a file with
    no rows or no numeric column."""
    path = resolve_log_path(Path(path))
    try:
        # utf-8-sig drops a BOM (spreadsheets add one); bad bytes must not crash a plot.
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise LogError(f"{path} is empty: no epoch has been logged yet")
    delimiter = sniff_delimiter(text[:_SNIFF_BYTES])
    try:
        rows = list(csv.reader(lines, delimiter=delimiter))
    except csv.Error as exc:
        raise LogError(f"{path} is not a readable CSV file: {exc}") from None
    header = [name.strip() for name in rows[0]]
    body = rows[1:]
    if not body:
        raise LogError(f"{path} has a header but no rows: no epoch has been logged yet")
    return _parse(path, header, body, delimiter)


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


def _parse(path: Path, header: list[str], body: list[list[str]], delimiter: str) -> TrainingLog:
    # With ';' or tab separators, European spreadsheets write 0,5 for 0.5.
    decimal_comma = delimiter != ","
    width = len(header)
    parsed: list[list[float | None]] = []
    for row in body:
        row = (row + [""] * width)[:width]
        parsed.append([parse_cell(cell, decimal_comma) for cell in row])

    epoch_index = header.index(EPOCH_COLUMN) if EPOCH_COLUMN in header else None
    if epoch_index is None:
        # Rows of words only (a header repeated by an appending logger) are no data.
        kept = [r for r in parsed if any(c is not None for c in r)]
        epochs = list(range(1, len(kept) + 1))
        if not kept:
            raise LogError(f"{path} has no numeric column to plot (columns: {', '.join(header)})")
    else:
        epochs, kept = _by_epoch(parsed, epoch_index)
        if not kept:
            raise LogError(f"{path}: the {EPOCH_COLUMN!r} column holds no epoch numbers")

    numeric, skipped = [], []
    for i, name in enumerate(header):
        if i == epoch_index:
            continue
        cells = [r[i] for r in kept]
        numbers = sum(1 for c in cells if c is not None and not math.isnan(c))
        words = sum(1 for c in cells if c is None)
        # Mostly words (a timestamp, a note) is not a metric; a stray word in a metric
        # column becomes a gap like NA, and an all-NA column stays (an empty panel).
        if words <= numbers:
            numeric.append((i, name or f"column {i + 1}"))
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
        has_epoch_column=epoch_index is not None,
        skipped=tuple(skipped),
    )


def _by_epoch(parsed: list[list[float | None]], epoch_index: int):
    """Rows keyed by their 1-based epoch; a later row for the same epoch wins (a log
    appended to after a restart repeats the epochs it redid)."""
    rows: dict[int, list[float | None]] = {}
    for row in parsed:
        raw = row[epoch_index]
        if raw is None or math.isnan(raw) or raw != int(raw):
            continue
        rows[int(raw) + 1] = row
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
    """`min` or `max`: the given mode unless it is `auto`/missing, else guessed from the
    name the way Keras guesses (accuracy-like metrics grow, losses and errors shrink)."""
    if mode in ("min", "max"):
        return mode
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
