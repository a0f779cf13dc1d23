"""Curves drawn as text with plotext, for people on ssh (`cbrun plot --terminal`).

plotext keeps one global figure, so each render clears it first. Its native kernel aborts
the process on a NaN coordinate, so gaps are made by leaving points out and breaking the
line there, and a log axis only ever sees positive values.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Sequence

import plotext

from cbrun.plotting.inputs import (
    PlotRun,
    describe_parts,
    epoch_span,
    positive_range,
    x_label,
)
from cbrun.run.logs import VAL_PREFIX, Family

# Distinct glyphs tell curves apart where there is no color (NO_COLOR, a pipe, a log file).
TRAIN_MARKER, VAL_MARKER = "hd", "braille"
TRAIN_KEY, VAL_KEY = "▚", "⢕"  # what those markers look like, for the key
TRAIN_COLOR, VAL_COLOR = "blue+", "orange+"
RUN_COLORS = ["blue+", "orange+", "green+", "red+", "magenta+", "cyan+", "gray+"]
# In a comparison each run has its own pair of glyphs, (training, validation): filled for
# training and hollow for validation where the shape allows, so that without color the
# runs still differ, and the key says which glyph is which run.
RUN_GLYPHS = [("●", "○"), ("■", "□"), ("▲", "△"), ("◆", "◇"), ("▼", "▽"), ("X", "x"),
              ("#", "+")]
BEST_COLOR, EARLY_STOP_COLOR, RESUME_COLOR = "orange+", "red+", "gray+"
# Rows of a panel, frame, tick labels and x label included: four rows of curve. Panels
# that cannot have that many are left out (and named); a lone panel gets what is left.
MIN_PANEL_HEIGHT = 8
TINY_PANEL_HEIGHT = 4  # frame, one row of curve, frame, tick labels: no x label
LOG_MARGIN_DECADES = 0.15  # as in the figure: a constant rate must not sit on the frame


def render(
    runs: Sequence[PlotRun],
    families: Sequence[Family],
    width: int = 100,
    height: int = 40,
    color: bool = False,
) -> str:
    """The whole picture as text, at most `height` lines of at most `width` columns: what
    the runs are, then per family a title, a panel and a key line naming each curve and
    mark (plotext's own legend would cover the curves). Panels share the height; those
    that would get too little are left out, and a last line names them."""
    # A cell is two braille dots wide: more points than that per column draw nothing more.
    most = 4 * width
    layers = [_layers(runs, family, _log_scale(runs, family), most) for family in families]
    keys = [_key_lines(layer[3], width, color) for layer in layers]
    header, count, panel_height, note = _layout(runs, families, keys, width, height)

    lines = list(header)
    for family, layer, key in zip(families[:count], layers, keys, strict=False):
        lines.append(_bold(family.name.replace("_", " "), color))
        lines.extend(_panel(runs, family, layer, width, panel_height, color))
        lines.extend(key)
    lines.extend(note)
    return "\n".join(lines) + "\n"


def _layout(runs, families, keys, width: int, height: int):
    """(header lines, panels drawn, rows per panel, note lines naming the panels left
    out): every panel if each gets `MIN_PANEL_HEIGHT` rows, else fewer; when room is short
    the header gives up the marks, which the keys name anyway."""
    headers = [_header(runs, width), _header(runs, width, compact=True)]

    def fixed(header: list[str], count: int) -> tuple[int, list[str]]:
        note = _left_out(families[count:], width)
        return len(header) + len(note) + sum(1 + len(k) for k in keys[:count]), note

    for header in headers:
        for count in range(len(families), 0, -1):
            rows, note = fixed(header, count)
            if (height - rows) // count >= MIN_PANEL_HEIGHT:
                return header, count, (height - rows) // count, note
    # Not even one panel fits at its smallest: the first one gets the rows that are left.
    rows, note = fixed(headers[1], 1)
    return headers[1], 1, max(TINY_PANEL_HEIGHT, height - rows), note


def _left_out(families: Sequence[Family], width: int) -> list[str]:
    if not families:
        return []
    names = ", ".join(f.name.replace("_", " ") for f in families)
    text = f"no room for: {names} (see --height, --metrics)"
    return textwrap.wrap(text, width, break_on_hyphens=False)


def _header(runs: Sequence[PlotRun], width: int, compact: bool = False) -> list[str]:
    """What the runs are, wrapped between its ' · ' parts to fit `width`; `compact` keeps
    only the status and the epochs."""
    def parts(run: PlotRun) -> list[str]:
        return describe_parts(run, marks=not compact)

    if len(runs) == 1:
        return _wrap_parts(f"{runs[0].label}: ", parts(runs[0]), width, "  ")
    lines = [f"Comparison of {len(runs)} runs"]
    for index, run in enumerate(runs):
        lines += _wrap_parts(f"  [{index + 1}] {run.label}: ", parts(run), width, "      ")
    return lines


def _wrap_parts(prefix: str, parts: Sequence[str], width: int, indent: str) -> list[str]:
    lines: list[str] = []
    line = prefix + parts[0]
    if len(line) > width:  # the id alone fills the line: the description starts below it
        lines.append(prefix.rstrip())
        line = indent + parts[0]
    for part in parts[1:]:
        if len(line) + 3 + len(part) <= width:
            line += " · " + part
        else:
            lines.append(line)
            line = indent + part
    lines.append(line)
    # A part longer than the whole width (a very long run id) is cut only where it must be.
    return [piece for text in lines
            for piece in textwrap.wrap(text, width, subsequent_indent=indent,
                                       break_on_hyphens=False)]


def _log_scale(runs: Sequence[PlotRun], family: Family) -> bool:
    return family.log_scale and positive_range(runs, family) is not None


def _panel(runs, family: Family, layer, width: int, height: int, color: bool) -> list[str]:
    fig = plotext.figure
    fig.clear()
    # The size is ours to choose (the caller read the terminal); plotext would otherwise
    # shrink it to what it guesses, 80 x 22 when output goes to a pipe.
    plotext.terminal.limit(False, False)
    fig.plot_size(width, height)
    # No painted background: readable on dark and light terminals alike.
    fig.theme("simple")
    fig.legend(False)
    log_scale = _log_scale(runs, family)
    curves, stars, rules, _ = layer
    ys = [y for points, *_ in curves for _, y, _ in points] + [y for _, y, _ in stars]
    # Later signals cover earlier ones: marks behind, curves over them, stars on top.
    if ys:
        for x, hue, symbol in rules:
            _draw_signal(fig, [(x, min(ys), False), (x, max(ys), False)], symbol, hue)
    for points, symbol, hue in curves:
        _draw_signal(fig, points, symbol, hue)
    for x, y, hue in stars:
        _draw_signal(fig, [(x, y, False)], "star", hue)

    if height >= MIN_PANEL_HEIGHT:  # a squeezed panel spends its rows on the curve
        fig.label(x_label(runs), "x")
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
        if ys:
            margin = max(LOG_MARGIN_DECADES, 0.05 * (max(ys) - min(ys)))
            fig.ruler("y").lim(min(ys) - margin, max(ys) + margin)
    text = fig.build().string(colorless=not color)
    fig.clear()
    return text.rstrip("\n").split("\n")


def _layers(runs: Sequence[PlotRun], family: Family, log_scale: bool, most: int):
    """What one panel draws: curves (points, glyph, color), stars (x, y, color), vertical
    rules (x, color, glyph), and the key that names them all (glyph, color, text)."""
    compare = len(runs) > 1
    curves, stars, rules, key = [], [], [], []
    for index, run in enumerate(runs):
        tag = f"[{index + 1}] " if compare else ""
        run_hue = RUN_COLORS[index % len(RUN_COLORS)] if compare else None
        train_glyph, val_glyph = RUN_GLYPHS[index % len(RUN_GLYPHS)]
        for column in family.columns:
            if column not in run.log.values:
                continue
            is_val = column.startswith(VAL_PREFIX)
            hue = run_hue or (VAL_COLOR if is_val else TRAIN_COLOR)
            if compare:
                marker = glyph = val_glyph if is_val else train_glyph
            else:
                marker, glyph = (VAL_MARKER, VAL_KEY) if is_val else (TRAIN_MARKER, TRAIN_KEY)
            points = _decimate(_points(run.log.epochs, run.log.values[column], log_scale),
                               most)
            if points:
                curves.append((points, marker, hue))
            key.append((glyph, hue, f"{tag}{column}"))

        marks = run.marks
        x_name = run.log.x_name
        if marks.best is not None and marks.monitor in family.columns:
            epoch, value = marks.best
            if math.isfinite(value) and (value > 0 or not log_scale):
                hue = run_hue or BEST_COLOR
                stars.append((epoch, math.log10(value) if log_scale else value, hue))
                key.append(("❋", hue, f"{tag}best {value:.4g} ({x_name} {epoch})"))
        if marks.early_stop is not None:
            hue = run_hue or EARLY_STOP_COLOR
            rules.append((marks.early_stop, hue, "║"))
            key.append(("║", hue, f"{tag}early stop (epoch {marks.early_stop})"))
        for first in marks.resumes:
            hue = run_hue or RESUME_COLOR
            # Between the last epoch before the restart and the first one after it.
            rules.append((first - 0.5, hue, "┊"))
            key.append(("┊", hue, f"{tag}resumed (epoch {first})"))
    if not curves and not stars:
        key.append(("", None, "(no finite values logged)"))
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
    # Unbounded powers: a step column may count past 1e20, and the ticks stay integers.
    steps = (m * 10**p for p in itertools.count() for m in (1, 2, 5))
    step = next(s for s in steps if (last - first) // s + 1 <= most)
    start = math.ceil(first / step) * step
    return list(range(start, last + 1, step)) or [first]


def log_ticks(runs: Sequence[PlotRun], family: Family) -> list[float]:
    """1, 2 and 5 times each power of ten within the positive values drawn."""
    shown = positive_range(runs, family)
    if shown is None:
        return []
    low, high = shown
    ticks = []
    for power in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2, 5):
            tick = mantissa * 10.0**power
            if low * 0.999 <= tick <= high * 1.001:
                ticks.append(tick)
    return ticks


def _decimate(points: list, most: int) -> list:
    """At most about `most` points, keeping each stretch's lowest and highest (a spike
    stays visible) and its gaps: plotext holds every point it is given as Python objects,
    and a 45 MB log took gigabytes."""
    if len(points) <= most:
        return points
    buckets = max(1, most // 2)
    size = -(-len(points) // buckets)
    kept = []
    for start in range(0, len(points), size):
        chunk = points[start:start + size]
        low = min(chunk, key=lambda p: p[1])
        high = max(chunk, key=lambda p: p[1])
        pair = sorted({low, high}, key=lambda p: p[0])
        gap = any(p[2] for p in chunk)
        kept.extend([(pair[0][0], pair[0][1], gap), *pair[1:]])
    return kept


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
