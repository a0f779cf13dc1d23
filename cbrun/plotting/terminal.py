"""Curves drawn as text with plotext, for people on ssh (`cbrun plot --terminal`).

plotext keeps one global figure, so each render clears it first. Its native kernel aborts
the process on a NaN coordinate, so gaps are made by leaving points out and breaking the
line there, and a log axis only ever sees positive values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotext

from cbrun.logs import VAL_PREFIX, Family
from cbrun.plotting.inputs import PlotRun, any_positive, describe, epoch_span

# Distinct glyphs tell curves apart where there is no color (NO_COLOR, a pipe, a log file).
TRAIN_MARKER, VAL_MARKER = "hd", "braille"
TRAIN_COLOR, VAL_COLOR = "blue+", "orange+"
RUN_COLORS = ["blue+", "orange+", "green+", "red+", "magenta+", "cyan+", "gray+"]
BEST_COLOR, EARLY_STOP_COLOR, RESUME_COLOR = "orange+", "red+", "gray+"
MIN_PANEL_HEIGHT = 10  # rows, frame and tick labels included


def render(
    runs: Sequence[PlotRun],
    families: Sequence[Family],
    width: int = 100,
    height: int = 40,
    color: bool = False,
) -> str:
    """The whole picture as text: what the runs are, then per family a panel and a key
    line naming each curve and mark (plotext's own legend would cover the curves)."""
    lines = _header(runs)
    # Each panel also takes a title row and a key row; plotext adds an x label row.
    per_panel = (height - len(lines)) // max(len(families), 1) - 2
    panel_height = max(MIN_PANEL_HEIGHT, per_panel)
    for family in families:
        panel, key = _panel(runs, family, width, panel_height, color)
        lines.append(_bold(family.name.replace("_", " "), color))
        lines.extend(panel)
        lines.extend(key)
    return "\n".join(lines) + "\n"


def _header(runs: Sequence[PlotRun]) -> list[str]:
    if len(runs) == 1:
        return [f"{runs[0].label}: {describe(runs[0])}"]
    lines = [f"Comparison of {len(runs)} runs"]
    for index, run in enumerate(runs):
        lines.append(f"  [{index + 1}] {run.label}: {describe(run)}")
    return lines


def _panel(runs, family: Family, width: int, height: int, color: bool):
    fig = plotext.figure
    fig.clear()
    # The size is ours to choose (the caller read the terminal); plotext would otherwise
    # shrink it to what it guesses, 80 x 22 when output goes to a pipe.
    plotext.terminal.limit(False, False)
    fig.plot_size(width, height)
    # No painted background: readable on dark and light terminals alike.
    fig.theme("simple")
    fig.legend(False)
    log_scale = family.log_scale and any_positive(runs, family)
    curves, stars, rules, key = _layers(runs, family, log_scale)
    ys = [y for points, *_ in curves for _, y, _ in points] + [y for _, y, _ in stars]
    # Later signals cover earlier ones: marks behind, curves over them, stars on top.
    if ys:
        for x, hue, symbol in rules:
            _draw_signal(fig, [(x, min(ys), False), (x, max(ys), False)], symbol, hue)
    for points, symbol, hue in curves:
        _draw_signal(fig, points, symbol, hue)
    for x, y, hue in stars:
        _draw_signal(fig, [(x, y, False)], "star", hue)
    if not ys:
        key.append(("", None, "(no finite values logged)"))

    fig.label("epoch", "x")
    first, last = epoch_span(runs)
    # Half an epoch of room each side keeps an early stop at the last epoch off the frame.
    fig.ruler("x").lim(first - 0.5, last + 0.5)
    fig.ruler("x").ticks(integer_ticks(first, last, max(3, width // 14)))
    if log_scale:
        # plotext's own log axis loses the curve once ticks are set, so the values are
        # drawn as log10 on a linear axis whose labels read in the original units.
        ticks = log_ticks(runs, family)
        if ticks:
            fig.ruler("y").ticks([math.log10(t) for t in ticks], [f"{t:.0e}" for t in ticks])
    text = fig.build().string(colorless=not color)
    fig.clear()
    return text.rstrip("\n").split("\n"), _key_lines(key, width, color)


def _layers(runs: Sequence[PlotRun], family: Family, log_scale: bool):
    """What one panel draws: curves (points, glyph, color), stars (x, y, color), vertical
    rules (x, color, glyph), and the key that names them all (glyph, color, text)."""
    compare = len(runs) > 1
    curves, stars, rules, key = [], [], [], []
    for index, run in enumerate(runs):
        tag = f"[{index + 1}] " if compare else ""
        run_hue = RUN_COLORS[index % len(RUN_COLORS)] if compare else None
        for column in family.columns:
            if column not in run.log.values:
                continue
            is_val = column.startswith(VAL_PREFIX)
            hue = run_hue or (VAL_COLOR if is_val else TRAIN_COLOR)
            points = _points(run.log.epochs, run.log.values[column], log_scale)
            if points:
                curves.append((points, VAL_MARKER if is_val else TRAIN_MARKER, hue))
            key.append(("⢕" if is_val else "▚", hue, f"{tag}{column}"))

        marks = run.marks
        if marks.best is not None and marks.monitor in family.columns:
            epoch, value = marks.best
            if math.isfinite(value) and (value > 0 or not log_scale):
                hue = run_hue or BEST_COLOR
                stars.append((epoch, math.log10(value) if log_scale else value, hue))
                key.append(("❋", hue, f"{tag}best {value:.4g} (epoch {epoch})"))
        if marks.early_stop is not None:
            hue = run_hue or EARLY_STOP_COLOR
            rules.append((marks.early_stop, hue, "║"))
            key.append(("║", hue, f"{tag}early stop (epoch {marks.early_stop})"))
        for first in marks.resumes:
            hue = run_hue or RESUME_COLOR
            # Between the last epoch before the restart and the first one after it.
            rules.append((first - 0.5, hue, "┊"))
            key.append(("┊", hue, f"{tag}resumed (epoch {first})"))
    return curves, stars, rules, key


def _draw_signal(fig, points, symbol: str, hue: str) -> None:
    marker = plotext.marker(symbol=symbol, pixel=plotext.pixel(foreground=hue))
    signal = fig.signal([p[0] for p in points], [p[1] for p in points], marker=marker)
    signal.lines()
    signal.density("full")  # "simple" skips cells on steep steps and leaves false gaps
    for i, point in enumerate(points):
        if i and point[2]:
            signal.line(i, False)  # a NaN was here: leave a gap, like matplotlib does
    fig.draw(signal)


def _key_lines(items, width: int, color: bool) -> list[str]:
    """The key, wrapped to the width: items never split across lines."""
    lines: list[str] = []
    line, used = "", 0
    for glyph, hue, text in items:
        plain = f"{glyph} {text}" if glyph else text
        painted = f"{_paint(glyph, hue, color)} {text}" if glyph else text
        if used and used + 2 + len(plain) > width:
            lines.append(line)
            line, used = "", 0
        line += ("  " if used else "") + painted
        used += (2 if used else 0) + len(plain)
    return lines + ([line] if line else [])


def _paint(text: str, hue: str | None, color: bool) -> str:
    if not color or hue is None:
        return text
    return plotext.colorize(text).fill(plotext.pixel(foreground=hue)).string()


def _bold(text: str, color: bool) -> str:
    if not color:
        return text
    return plotext.colorize(text).fill(plotext.pixel(style="bold")).string()


def integer_ticks(first: int, last: int, most: int) -> list[int]:
    """Whole epochs, at most `most` of them, on a step of 1, 2, 5, 10, 20, 50, ..."""
    steps = (m * 10**p for p in range(12) for m in (1, 2, 5))
    step = next(s for s in steps if (last - first) // s + 1 <= most)
    start = math.ceil(first / step) * step
    return list(range(start, last + 1, step)) or [first]


def log_ticks(runs: Sequence[PlotRun], family: Family) -> list[float]:
    """1, 2 and 5 times each power of ten within the positive values drawn."""
    values = [
        v
        for run in runs
        for c in family.columns
        for v in run.log.values.get(c, ())
        if not math.isnan(v) and v > 0
    ]
    if not values:
        return []
    low, high = min(values), max(values)
    ticks = []
    for power in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2, 5):
            tick = mantissa * 10.0**power
            if low * 0.999 <= tick <= high * 1.001:
                ticks.append(tick)
    return ticks


def _points(epochs: Sequence[int], values: Sequence[float], log_scale: bool):
    """(x, y, starts_after_gap) for each drawable value."""
    points = []
    gap = False
    for epoch, value in zip(epochs, values, strict=True):
        if math.isnan(value) or (log_scale and value <= 0):
            gap = True
            continue
        y = math.log10(value) if log_scale else value
        points.append((epoch, y, gap and bool(points)))
        gap = False
    return points
