"""What `cbrun evaluate` found, and how it is shown: a table of metrics, the confusion
matrix of a classifier as text (class names on both axes) or as a PNG, and JSON. Lower
floor: rich and matplotlib, no TensorFlow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.table import Table

from cbrun.errors import UsageError


@dataclass
class Evaluation:
    run_dir: str
    checkpoint: str  # the checkpoint's label: "best: epoch 4 (val_loss 0.152), ..."
    epoch: int | None  # whose weights, when known
    data: str  # "the validation split", or the file given
    samples: int | None
    metrics: dict[str, float]
    notes: list[str] = field(default_factory=list)
    classes: list[str] | None = None  # with `confusion`: row = true class, column = predicted
    confusion: list[list[int]] | None = None
    baseline: dict[str, float] | None = None  # the trivial model's metrics on the same rows
    baseline_predicts: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


def heading(result: Evaluation) -> str:
    samples = f" ({result.samples} samples)" if result.samples else ""
    return (f"run:        {result.run_dir}\ncheckpoint: {result.checkpoint}\n"
            f"data:       {result.data}{samples}")


def metrics_table(result: Evaluation) -> Table:
    base = result.baseline or {}
    table = Table()
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    if base:
        table.add_column("baseline", justify="right", style="dim")
    for name, value in result.metrics.items():
        cells = [name, f"{value:.6g}"]
        if base:
            cells.append(f"{base[name]:.6g}" if name in base else "")
        table.add_row(*cells)
    return table


CONFUSION_HEADING = "confusion matrix (rows: true class, columns: predicted class)"


def confusion_table(result: Evaluation) -> Table:
    """Rows: true class; columns: predicted class; the diagonal in bold (CONFUSION_HEADING
    goes above it: a title would wrap to the width of a small table)."""
    names = result.classes or []
    table = Table()
    table.add_column("true \\ predicted", style="bold")
    for name in names:
        table.add_column(name, justify="right")
    for i, (name, row) in enumerate(zip(names, result.confusion or [], strict=True)):
        table.add_row(name, *(f"[bold]{v}[/bold]" if i == j else (str(v) if v else ".")
                              for j, v in enumerate(row)))
    return table


def save_confusion_png(result: Evaluation, path: Path) -> Path:
    """The confusion matrix as an image: counts in each cell, shaded by the share of the
    true class's samples, class names on both axes."""
    if result.confusion is None:
        raise UsageError("-o draws the confusion matrix of a classifier, and this model's "
                         "loss is no cross-entropy over classes; leave out -o")
    if path.suffix.lower() != ".png":
        raise UsageError(f"-o {path}: the confusion matrix is written as a PNG; name a "
                         ".png file")
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.array(result.confusion, dtype=float)
    names = result.classes or []
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = max(4.0, 0.45 * len(names) + 2.0)
    figure = Figure(figsize=(side + 1.0, side), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="share of the true class")
    slanted = len(names) > 6 and max(map(len, names), default=0) > 2
    axes.set_xticks(range(len(names)), names, rotation=45 if slanted else 0,
                    ha="right" if slanted else "center")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            axes.text(j, i, str(int(count)), ha="center", va="center", fontsize=8,
                      color="white" if share[i, j] > 0.5 else "black")
    axes.set_title(f"{Path(result.run_dir).name}: {result.data}", fontsize=9)
    figure.tight_layout()
    from cbrun.run.outpath import replace_with

    replace_with(path, lambda partial: figure.savefig(partial, format="png"))
    return path
