"""Whether the held-out splits represent the training data: the one-line warnings that
`cbrun validate` and a run's start print when a split lacks a class that training has,
when its class shares are far from training's, or when the rows are sorted by their label.

Only a target of classes is judged (one label, cbrun/data/splits.class_codes); numbers
have no classes to miss."""

from __future__ import annotations

import numpy as np

from cbrun.data.splits import MAX_CLASSES, class_codes, uniques

# A split's share of a class is "far" from training's when it is under half or over twice
# it, by at least this much: 3% against 5% is noise on a few hundred rows.
FAR = 0.10
# Shares of splits smaller than this are not compared: they are too noisy to mean much.
MIN_ROWS = 20


def data_warnings(data, folder, seed: int) -> list[str]:
    """The warnings for a config's `data:` section (a DataSource) read from its files,
    without TensorFlow; none where the source cannot tell before loading."""
    found = data.split_labels(folder, seed)
    if found is None:
        return []
    labels, summary, *names = found  # a streamed table's labels are class ids, and names
    return split_warnings(labels, data, summary, names[0] if names else None)


def _counted(labels) -> tuple[np.ndarray, np.ndarray] | None:
    """(the classes, their rows) of labels that are classes, else None: counted from the
    array, or as a streamed table's labels were counted (their own `counted`)."""
    if hasattr(labels, "counted"):
        found = labels.counted()
        many = found is not None and len(found[0]) > MAX_CLASSES
        return None if many and not getattr(labels, "text", True) else found
    if class_codes(labels) is None:
        return None
    values, _, counts = uniques(np.asarray(labels))
    return values, counts


def _name(value) -> str:
    return repr(value.item() if hasattr(value, "item") else value)


def _sorted_note(method: str, shuffle: bool) -> str:
    if method == "tail":
        return ("the rows are sorted by their label, and split: tail holds out the last "
                "rows, which hold the last classes only; use split: stratified")
    drawn = {"stratified": "every class in its share", "random": "rows drawn at random"}
    order = ("shuffle: true mixes the training rows" if shuffle else
             "but shuffle: false trains on the classes one block after another")
    return (f"the rows are sorted by their label (held out: {drawn.get(method, method)}; "
            f"{order})")


def split_warnings(labels: dict[str, object], data, summary: dict | None = None,
                   names: list[str] | None = None) -> list[str]:
    """Lines about `labels` ({split: labels of its rows}) of the `data:` section `data`.
    `summary`: how the held-out rows were drawn (`Cut.summary()`); `names`: the class
    names of ids 0, 1, ... where the labels are ids."""
    summary = summary or {}
    method = summary.get("method", "")
    found = []
    if data.split == "stratified" and method == "random":
        found.append("split: stratified needs a target of classes, and this one holds "
                     "numbers: the held-out rows were drawn at random")
    train = labels.get("train")
    counted = None if train is None else _counted(train)
    if counted is None:
        return found
    if summary.get("sorted_by_label"):
        found.append(_sorted_note(method, data.shuffle))
    values, counts = counted
    shares = dict(zip(values.tolist(), counts / counts.sum(), strict=True))

    def shown(value) -> str:
        if names is not None and isinstance(value, int) and 0 <= value < len(names):
            return repr(names[value])
        return _name(value)

    for split in ("validation", "test"):
        rows = labels.get(split)
        if rows is None or len(rows) == 0:
            continue
        if hasattr(rows, "counted"):
            mine, mine_counts = rows.counted() or (np.zeros(0), np.zeros(0))
        else:
            mine, _, mine_counts = uniques(np.asarray(rows))
        present = set(mine.tolist())
        missing = [v for v in shares if v not in present]
        if missing:
            listed = ", ".join(shown(v) for v in missing[:5]) + (", ..." if len(missing) > 5
                                                                 else "")
            found.append(f"the {split} split lacks {len(missing)} of the {len(shares)} "
                         f"classes training has ({listed}): its metrics say nothing about "
                         f"{'them' if len(missing) > 1 else 'it'}")
            continue
        if len(rows) < MIN_ROWS:
            continue
        theirs = dict(zip(mine.tolist(), mine_counts / mine_counts.sum(), strict=True))
        worst = max(shares, key=lambda v: abs(theirs.get(v, 0.0) - shares[v]))
        a, b = theirs.get(worst, 0.0), shares[worst]
        if abs(a - b) >= FAR and (a < b / 2 or a > 2 * b):
            found.append(f"the {split} split's class shares differ from training's: class "
                         f"{shown(worst)} is {a:.0%} of {split} and {b:.0%} of training")
    return found
