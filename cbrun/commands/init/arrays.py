"""`cbrun init` for an .npz archive: which array is the input and which the target, read
from the headers and the target's values."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cbrun.commands.init import templates as t
from cbrun.commands.init.document import Block, Items
from cbrun.errors import UsageError

X_NAMES = ("x", "x_train", "inputs", "features")
Y_NAMES = ("y", "y_train", "labels", "label", "targets", "target", "classes")


def _pick_y(headers: dict, x: str) -> str:
    """The targets: among the arrays other than x, a 1-D integer array named like a label
    first, then any named like one, then any 1-D integer array, then the first."""
    others = [n for n in headers if n != x]
    named = [n for n in others if n.lower() in Y_NAMES]
    ids = [n for n in others if len(headers[n][0]) == 1 and headers[n][1].kind in "iub"]
    return next(iter([n for n in named if n in ids] + named + ids + others))


def npz(path: Path, rel_of, layout: dict[str, Path]) -> tuple[Block, Block, Block, str]:
    from cbrun.config.data.npz import npz_headers

    try:
        headers = npz_headers(path)
    except (ValueError, OSError) as exc:
        raise UsageError(f"{path} {exc}") from None
    names = list(headers)
    if len(names) < 2:
        raise UsageError(f"{path.name} needs an array of inputs and one of targets; it has: "
                         f"{', '.join(names) or 'none'}")
    x = next((n for n in X_NAMES if n in headers),
             next((n for n in names if n.lower() not in Y_NAMES), names[0]))
    y = _pick_y(headers, x)
    x_shape, y_shape = headers[x][0], headers[y][0]
    with np.load(path, allow_pickle=False) as archive:
        labels = archive[y]
    classes = labels.dtype.kind in "iub" and labels.ndim == 1 and labels.size \
        and labels.min() >= 0 and labels.max() < 1000
    if classes:
        units = int(labels.max()) + 1  # a class id is an output's index: ids 1..K need K+1
        head, compile_ = t.classifier(units)
        what, split = f"{units} classes (integer ids)", "stratified"
    else:
        head, compile_ = t.regression(int(np.prod(y_shape[1:], dtype=np.int64)))
        what, split = "numbers (regression)", "random"
    shapes = ", ".join(f"{k} {list(v[0])}" for k, v in headers.items())
    data = Block().set("source", "npz").set("path", rel_of(path), f"arrays: {shapes}")
    for field in ("validation_path", "test_path"):
        if field in layout:
            data.set(field, rel_of(layout[field]))
    data.set("x", x).set("y", y, f"the target: {what}")
    if "validation_path" not in layout:
        data.set("validation_split", 0.2, t.split_note(split)).set("split", split)
    data.set("batch_size", 32)
    layers = Items()
    if len(x_shape) > 2:
        layers.add({"type": "Flatten"})
    layers.add({"type": "Dense", "units": 64, "activation": "relu"})
    layers.add(head, "one output per class" if classes else "a regression")
    if len(y_shape) > 2:
        layers.add({"type": "Reshape", "target_shape": list(y_shape[1:])}, "to the shape of y")
    if not classes and len(y_shape) <= 2:
        layers.note(t.TARGET_SCALE_NOTE)
        layers.add(dict(t.TARGET_SCALE))
    model = Block().set("input_shape", list(x_shape[1:]) or [1]).set("layers", layers)
    return data, model, compile_, f"an .npz of {x_shape[0]} samples: {what}"
