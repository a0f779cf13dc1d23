"""A grid of input images, each titled with its true and predicted label (PredictionSamples).

Drawn on the Agg canvas directly, never through pyplot: no display needed, no global state.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

CELL_INCHES = (1.5, 1.75)
DPI = 100
RIGHT, WRONG = "tab:green", "tab:red"


def display_range(images: np.ndarray) -> tuple[float, float]:
    """One grey scale for every image and every epoch: the sample's own value range, so
    pixels 0..16 (digits) and 0..255 both fill it."""
    low, high = float(np.min(images)), float(np.max(images))
    return (low, high) if high > low else (low, low + 1.0)


def grid_png(images: np.ndarray, titles: Sequence[str], correct: Sequence[bool | None],
             heading: str) -> bytes:
    """PNG bytes of the images ([n, h, w] or [n, h, w, c]) in a near-square grid."""
    count = len(images)
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    figure = Figure(figsize=(cols * CELL_INCHES[0], rows * CELL_INCHES[1] + 0.4), dpi=DPI)
    FigureCanvasAgg(figure)
    figure.suptitle(heading)
    low, high = display_range(images)
    for index in range(rows * cols):
        axes = figure.add_subplot(rows, cols, index + 1)
        axes.set_axis_off()
        if index >= count:
            continue
        image = images[index]
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        if image.ndim == 2:
            axes.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        else:  # colour: matplotlib wants floats in [0, 1]
            axes.imshow(np.clip((image - low) / (high - low), 0.0, 1.0),
                        interpolation="nearest")
        color = {True: RIGHT, False: WRONG}.get(correct[index], "black")
        axes.set_title(titles[index], fontsize=8, color=color)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
