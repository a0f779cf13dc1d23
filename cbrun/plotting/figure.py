"""The matplotlib figure of one or more runs: one panel per metric family.

The figure is built on the Agg canvas directly, never through pyplot, so drawing neither
needs a display nor touches global state. `build_figure` returns the Figure itself, so
tests inspect what a user would see: panels, lines, marks, scales.

Artists carry a `gid` naming what they show: `series` for a logged column, `best`,
`early_stop` and `resume` for the marks.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, LogFormatterSciNotation, LogLocator, MaxNLocator

from cbrun.errors import CbrunError, UsageError
from cbrun.plotting.inputs import PlotRun, describe, epoch_span, positive_range, x_label
from cbrun.run.logs import VAL_PREFIX, Family

PANEL_SIZE = (5.4, 3.7)  # inches; at DPI 120 a panel is about 650 x 440 pixels
DPI = 120
# Markers on every point while they stay apart; past this, only isolated points get one.
DOTS_UP_TO = 40
# A panel is about 650 pixels wide: a curve longer than this is drawn from each stretch's
# lowest and highest values, which look the same there and cost memory and time per pixel,
# not per epoch (a 45 MB log has a million rows).
MOST_POINTS = 2000

TRAIN_COLOR, VAL_COLOR = "tab:blue", "tab:orange"
RUN_COLORS = [f"tab:{c}" for c in ("blue", "orange", "green", "red", "purple",
                                   "brown", "pink", "gray", "olive", "cyan")]
EARLY_STOP_COLOR, RESUME_COLOR = "tab:red", "0.45"
# Room above and below the values of a log axis, in decades: matplotlib's own margin is a
# share of the span, which is nothing for a constant learning rate (it sat on the frame).
LOG_MARGIN_DECADES = 0.15


def output_formats() -> tuple[str, ...]:
    """The suffixes `-o` accepts: those that need neither LaTeX (pgf) nor a PostScript
    backend that drops the transparency of the grid and legends (eps, ps)."""
    formats = ("png", "svg", "pdf")
    # matplotlib writes JPEG through Pillow, which it only recommends.
    if importlib.util.find_spec("PIL") is not None:
        formats += ("jpg", "jpeg")
    return formats


def grid_shape(panels: int) -> tuple[int, int]:
    """(rows, cols): a single row up to three panels, then rows of two or three."""
    if panels <= 3:
        return 1, max(panels, 1)
    cols = 2 if panels == 4 else 3
    return math.ceil(panels / cols), cols


def _shown(text: str) -> str:
    """Text from a log or a run (column names, labels) as written: matplotlib reads a pair
    of `$` as mathtext, and a column named `$x^{2` would fail to draw."""
    return text.replace("$", r"\$")


def build_figure(runs: Sequence[PlotRun], families: Sequence[Family]) -> Figure:
    rows, cols = grid_shape(len(families))
    compare = len(runs) > 1
    extra = 0.5 if compare else 0.0  # room for the legend of runs below the panels
    fig = Figure(
        figsize=(PANEL_SIZE[0] * cols, PANEL_SIZE[1] * rows + 0.6 + extra),
        dpi=DPI,
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, family in zip(axes, families, strict=False):
        _draw_panel(ax, runs, family, compare)
    for ax in axes[len(families):]:
        ax.remove()

    if compare:
        fig.suptitle(f"Comparison of {len(runs)} runs", fontsize=13, fontweight="bold")
        _runs_legend(fig, runs)
    else:
        run = runs[0]
        fig.suptitle(_shown(f"{run.label}\n{describe(run)}"), fontsize=12)
    return fig


def _draw_panel(ax, runs: Sequence[PlotRun], family: Family, compare: bool) -> None:
    drawn = 0
    for index, run in enumerate(runs):
        color = RUN_COLORS[index % len(RUN_COLORS)]
        for column in family.columns:
            if column not in run.log.values:
                continue
            is_val = column.startswith(VAL_PREFIX)
            x, y = thinned(run.log.epochs, run.log.values[column])
            ax.plot(
                x,
                y,
                color=color if compare else (VAL_COLOR if is_val else TRAIN_COLOR),
                linestyle="--" if compare and is_val else "-",
                linewidth=1.8,
                marker="o",
                markersize=3.5,
                markevery=_dots(y),
                label=_shown(f"{run.label} {column}" if compare else column),
                gid="series",
            )
            drawn += sum(1 for v in y if not math.isnan(v))
        _draw_marks(ax, run, family, color if compare else None)

    ax.set_title(_shown(family.name.replace("_", " ")), fontsize=11, fontweight="bold")
    ax.set_xlabel(_shown(x_label(runs)))
    ax.set_ylabel(_shown(family.name.replace("_", " ")))
    first, last = epoch_span(runs)
    if last - first < 3:
        # MaxNLocator would still put ticks every half or fifth of an epoch here.
        ax.xaxis.set_major_locator(FixedLocator(range(first, last + 1)))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # Half an epoch of room each side: an early stop at the last epoch stays visible. Long
    # runs and step counts get a share of the span instead, or the edge points touch it.
    room = max(0.6, 0.02 * (last - first))
    ax.set_xlim(first - room, last + room)
    ax.grid(True, which="major", alpha=0.35)
    shown = positive_range(runs, family) if family.log_scale else None
    if shown is not None:
        # Learning rates move by factors; `mask` drops a 0 instead of plunging to 1e-300.
        ax.set_yscale("log", nonpositive="mask")
        ax.grid(True, which="minor", alpha=0.12)
        # Ticks at 2 and 5 of each decade, labelled while the axis spans up to three
        # decades: a schedule that halves the rate would otherwise show only two labels.
        ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.yaxis.set_minor_formatter(LogFormatterSciNotation(minor_thresholds=(3, 3)))
        low, high = shown
        margin = 10 ** max(LOG_MARGIN_DECADES, 0.05 * math.log10(high / low))
        ax.set_ylim(low / margin, high * margin)
    if not drawn:
        ax.text(0.5, 0.5, "no finite values logged", transform=ax.transAxes,
                ha="center", va="center", color="0.4")
    if not compare and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8.5, framealpha=0.85)


def _draw_marks(ax, run: PlotRun, family: Family, color: str | None) -> None:
    marks = run.marks
    if marks.best is not None and marks.monitor in family.columns:
        epoch, value = marks.best
        if not math.isnan(value):
            ax.plot([epoch], [value], linestyle="none", marker="*", markersize=15,
                    color=color or "gold", markeredgecolor="black", markeredgewidth=0.8,
                    zorder=5, gid="best",
                    label=_shown(f"best {marks.monitor} {value:.4g} ({run.log.x_name} {epoch})"))
    if marks.early_stop is not None:
        ax.axvline(marks.early_stop, color=color or EARLY_STOP_COLOR, linestyle="-.",
                   linewidth=1.3, alpha=0.9, gid="early_stop",
                   label=f"early stop (epoch {marks.early_stop})")
    for first in marks.resumes:
        # Between the last epoch before the restart and the first one after it.
        ax.axvline(first - 0.5, color=color or RESUME_COLOR, linestyle=":",
                   linewidth=1.6, gid="resume", label=f"resumed (epoch {first})")


def _runs_legend(fig: Figure, runs: Sequence[PlotRun]) -> None:
    handles = [Line2D([], [], color=RUN_COLORS[i % len(RUN_COLORS)], linewidth=2.2,
                      label=_shown(run.label)) for i, run in enumerate(runs)]
    handles.append(Line2D([], [], color="black", label="training"))
    handles.append(Line2D([], [], color="black", linestyle="--", label="validation"))
    if any(r.marks.best for r in runs):
        handles.append(Line2D([], [], color="0.5", marker="*", markersize=12,
                              markeredgecolor="black", linestyle="none", label="best epoch"))
    if any(r.marks.early_stop is not None for r in runs):
        handles.append(Line2D([], [], color="0.3", linestyle="-.", label="early stop"))
    if any(r.marks.resumes for r in runs):
        handles.append(Line2D([], [], color="0.3", linestyle=":", label="resumed"))
    fig.legend(handles=handles, loc="outside lower center",
               ncols=min(len(handles), 5), fontsize=9, frameon=False)


def thinned(x: Sequence[int], y: Sequence[float],
            most: int = MOST_POINTS) -> tuple[Sequence[int], Sequence[float]]:
    """At most about `most` points of the curve (x, y): each of `most / 2` stretches keeps
    its lowest and highest value (a spike stays visible) and a gap (a NaN) where it had
    one, in the order of x."""
    if len(x) <= most:
        return x, y
    size = -(-len(x) // max(1, most // 2))
    xs: list[int] = []
    ys: list[float] = []
    for start in range(0, len(x), size):
        chunk = range(start, min(len(x), start + size))
        finite = [i for i in chunk if not math.isnan(y[i])]
        kept = set()
        if finite:
            kept |= {min(finite, key=y.__getitem__), max(finite, key=y.__getitem__)}
        if len(finite) < len(chunk):
            kept.add(next(i for i in chunk if math.isnan(y[i])))
        for i in sorted(kept):
            xs.append(x[i])
            ys.append(y[i])
    return xs, ys


def _dots(y: Sequence[float]) -> list[int]:
    """Indices that get a dot: all of a short run, else the points no line reaches
    (a value between two gaps would otherwise be invisible)."""
    if len(y) <= DOTS_UP_TO:
        return [i for i, v in enumerate(y) if not math.isnan(v)]

    def isolated(i: int) -> bool:
        before = i == 0 or math.isnan(y[i - 1])
        after = i == len(y) - 1 or math.isnan(y[i + 1])
        return before and after

    return [i for i, v in enumerate(y) if not math.isnan(v) and isolated(i)]


def check_output(path: Path) -> str:
    """The format of `-o path` (its suffix); `UsageError` when cbrun cannot write it
    there. Checked before anything is read, so a typo costs nothing."""
    formats = output_formats()
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        known = ", ".join(f".{f}" for f in formats)
        given = f"'.{suffix}'" if suffix else "no extension"
        raise UsageError(f"-o {path}: {given} is not a supported image format; use one "
                         f"of {known}")
    if not path.parent.is_dir():
        raise UsageError(f"-o {path}: the folder {path.parent} does not exist")
    return suffix


def save_figure(fig: Figure, path: Path) -> Path:
    """Write the figure; the format follows the suffix (see `output_formats`)."""
    path = Path(path)
    suffix = check_output(path)
    try:
        fig.savefig(path, format=suffix)
    except OSError as exc:
        raise CbrunError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
