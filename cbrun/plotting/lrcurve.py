"""The learning-rate finder's curve (`cbrun lr-find`): the loss smoothed, the rate it
suggests, and the curve drawn as a PNG and as text. No TensorFlow here: the sweep itself is
cbrun/engine/lrfind.py.

The loss of one batch is noisy. While the sweep runs, its exponential moving average with
bias correction (fastai's and Lightning's, beta 0.98) says when to stop: once it is DIVERGE
times its lowest value, the rate is too high to train at all. That average lags about 50
batches behind the rate, two decades of a 200-batch sweep over eight, which moves the
steepest fall towards the minimum; the curve drawn and the suggestion use a centred mean
instead, which has no lag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

SMOOTHING = 0.98
DIVERGE = 4.0
# The first points of the sweep are left out of the suggestion: nothing is learnt there
# yet and the slope is noise (Lightning skips 10).
SKIP_FIRST = 10


class Smoother:
    """The bias-corrected exponential moving average of the losses given so far."""

    def __init__(self, beta: float = SMOOTHING):
        self.beta, self.average, self.count = beta, 0.0, 0

    def add(self, loss: float) -> float:
        self.count += 1
        self.average = self.beta * self.average + (1 - self.beta) * loss
        return self.average / (1 - self.beta ** self.count)


def centred(values: list[float], half: int) -> list[float]:
    """The mean of each value and up to `half` on either side (fewer at the ends); a
    non-finite value makes its neighbours' means non-finite, as it should."""
    return [sum(values[max(0, i - half):i + half + 1])
            / len(values[max(0, i - half):i + half + 1]) for i in range(len(values))]


@dataclass(frozen=True)
class Curve:
    rates: list[float]
    losses: list[float]  # the loss of each batch, as trained at its rate
    stop: str  # why the sweep ended: "diverged" | "done"

    def smoothed(self) -> list[float]:
        """The centred mean over a twentieth of the sweep (at least 2 batches each side)."""
        return centred(self.losses, max(2, len(self.losses) // 40))

    def suggestion(self) -> float | None:
        """The rate where the smoothed loss falls fastest per decade of rate, before its
        lowest point (Lightning's steepest descent; past the minimum the loss only falls
        again by chance). None when the curve never falls."""
        losses = self.smoothed()
        finite = [i for i, loss in enumerate(losses) if math.isfinite(loss)]
        if len(finite) < 3:
            return None
        lowest = min(finite, key=lambda i: losses[i])
        first = min(SKIP_FIRST, lowest // 2)
        best, steepest = None, 0.0
        for i in range(first + 1, lowest + 1):
            run = math.log10(self.rates[i]) - math.log10(self.rates[i - 1])
            slope = (losses[i] - losses[i - 1]) / run if run > 0 else 0.0
            if slope < steepest:
                best, steepest = i, slope
        return None if best is None else self.rates[best]


def set_value(optimizer: str | None, rate: float) -> str:
    """What `--set` takes to train at `rate`: the learning_rate of an optimizer given as a
    mapping (`optimizer` None), else (`optimizer: adam`) the optimizer as a mapping with its
    Keras class name."""
    shown = f"{rate:.3g}"
    if optimizer is None:
        return f"compile.optimizer.learning_rate={shown}"
    return f"compile.optimizer={{type: {optimizer}, learning_rate: {shown}}}"


def draw_png(curve: Curve, path: Path, title: str) -> None:
    """The curve on a log axis of rates, the suggestion marked; written to `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    points = [(r, loss) for r, loss in zip(curve.rates, curve.smoothed(), strict=True)
              if math.isfinite(loss)]
    ax.plot([r for r, _ in points], [loss for _, loss in points], color="tab:blue",
            label="training loss (smoothed)")
    suggested = curve.suggestion()
    if suggested is not None:
        ax.axvline(suggested, color="tab:orange", linestyle="--",
                   label=f"suggested {suggested:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title(title.replace("$", r"\$"), fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.savefig(path, format="png")


def render(curve: Curve, width: int = 80, height: int = 20) -> str:
    """The curve as text (plotext), rates as log10 on the x axis labelled in rates, the
    suggestion as a vertical rule."""
    import plotext

    fig = plotext.figure
    fig.clear()
    plotext.terminal.limit(False, False)
    fig.plot_size(width, height)
    fig.theme("simple")
    # plotext aborts the process on a NaN coordinate: only finite points are drawn.
    points = [(math.log10(r), loss) for r, loss in zip(curve.rates, curve.smoothed(),
                                                       strict=True)
              if math.isfinite(loss) and r > 0]
    if points:
        suggested = curve.suggestion()
        if suggested is not None:
            low, high = min(y for _, y in points), max(y for _, y in points)
            x = math.log10(suggested)
            _line(fig, [(x, low), (x, high)], "|")
        _line(fig, points, "braille")
        first, last = math.floor(points[0][0]), math.ceil(points[-1][0])
        ticks = list(range(first, last + 1))
        fig.ruler("x").ticks(ticks, [f"1e{t}" for t in ticks])
    fig.label("learning rate (log scale)", "x")
    text = fig.build().string(colorless=True)
    fig.clear()
    return text.rstrip("\n") + "\n"


def _line(fig, points: list[tuple[float, float]], symbol: str) -> None:
    import plotext

    signal = fig.signal([x for x, _ in points], [y for _, y in points],
                        marker=plotext.marker(symbol=symbol))
    signal.lines()
    signal.density("full")
    fig.draw(signal)


def summary(curve: Curve, steps: int) -> list[str]:
    """What the sweep did, in a line or two."""
    done = len(curve.rates)
    how = (f"stopped after {done} of {steps} batches: the loss rose past {DIVERGE:g}x its "
           f"lowest" if curve.stop == "diverged" else f"{done} batches")
    return [f"swept {curve.rates[0]:.3g} to {curve.rates[-1]:.3g}: {how}"]


