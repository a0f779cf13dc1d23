"""Rows that repeat: inside a split, held-out rows that training holds too (leakage), and
rows whose features agree while their labels do not (conflicts). Rows are grouped by their
hashes (cbrun/data/rowkeys.py), every group confirmed value by value."""

from __future__ import annotations

from typing import Any

import numpy as np

from cbrun.data import rowkeys
from cbrun.data.columns import plain
from cbrun.data.report import EXAMPLES, Part, Places, and_more, note, place_text


def duplicates_report(table, features: list[str], labels: list[str], places: Places,
                      label_at=None, hashes: tuple[np.ndarray, np.ndarray] | None = None
                      ) -> tuple[dict, list[dict]]:
    """Rows that repeat: inside each split, held-out rows that training holds too
    (leakage), and rows with the same features but another label (conflicts).
    `label_at(row)`: the label shown for a row (default: the label columns' values);
    `hashes`: the rows' hashes over the features and over features and labels, where a
    scan made them already."""
    if label_at is None:
        def label_at(row: int) -> Any:
            values = [plain(table.column(c)[row].as_py()) for c in labels]
            return values[0] if len(values) == 1 else values
    features = [c for c in features if rowkeys.keyable(table.column(c))]
    labels = [c for c in labels if rowkeys.keyable(table.column(c))]
    if hashes is None:
        by_features = rowkeys.row_hashes(table, features)
        hashes = by_features, rowkeys.row_hashes(table, labels, by_features)
    by_features, whole = hashes
    feature_first = rowkeys.confirm(table, features, rowkeys.groups(by_features))
    first = feature_first
    if labels:
        # Whole rows can repeat only inside a group of equal features: most rows are
        # alone in theirs, and only the others are sorted again.
        shared = np.flatnonzero(np.bincount(feature_first, minlength=len(first))
                                [feature_first] > 1)
        first = np.arange(len(first))
        first[shared] = shared[rowkeys.groups(whole[shared])]
        first = rowkeys.confirm(table, features + labels, first)
    report = {"columns": features + labels, "within": {}, "across": {}, "conflicts": None}
    found: list[dict] = []
    parts = {part.split: part for part in places.parts}
    for split, part in parts.items():
        report["within"][split], finding = _within(part, first, places)
        found += finding
    train = parts.get("train")
    if train is not None:
        in_train = np.zeros(table.num_rows, dtype=bool)
        in_train[first[train.rows]] = True
        for split, part in parts.items():
            if split != "train":
                report["across"][split], finding = _across(part, train, first, in_train,
                                                           places)
                found += finding
    if labels and features:
        report["conflicts"], finding = _conflicts(first, feature_first, places, label_at)
        found += finding
    return report, found


def _within(part: Part, first: np.ndarray, places: Places) -> tuple[dict, list[dict]]:
    groups = first[part.rows]
    ids, counts = np.unique(groups, return_counts=True)
    repeated = ids[counts > 1]
    extra = int((counts[counts > 1] - 1).sum())
    examples = []
    # The groups met first in the file first: np.unique sorted them by their first row.
    for group in repeated[:EXAMPLES]:
        rows = part.rows[groups == group]
        examples.append([places.of(int(r)) for r in rows[:4]])
    report = {"rows": extra, "groups": len(repeated), "examples": examples}
    if not extra:
        return report, []
    shown = "; ".join(" = ".join(place_text(p, None) for p in group) for group in examples[:3])
    return report, [note("duplicates", (
        f"{extra} row{'s' if extra > 1 else ''} of {part.split} repeat{'' if extra > 1 else 's'}"
        f" an earlier {part.split} row exactly ({part.file}: {shown}"
        f"{and_more(min(3, len(repeated)), len(repeated))})"), split=part.split)]


def _across(part: Part, train: Part, first: np.ndarray, in_train: np.ndarray,
            places: Places) -> tuple[dict, list[dict]]:
    leaked = part.rows[in_train[first[part.rows]]]
    examples = []
    for row in leaked[:EXAMPLES]:
        twin = train.rows[first[train.rows] == first[row]][0]
        examples.append({"row": places.of(int(row)), "train": places.of(int(twin))})
    report = {"rows": len(leaked), "of": len(part.rows), "examples": examples}
    if not len(leaked):
        return report, []
    shown = "; ".join(f"{places.say(e['row'])} = {places.say(e['train'])}"
                      for e in examples[:3])
    share = len(leaked) / max(1, len(part.rows))
    are = "is also a training row" if len(leaked) == 1 else "are also training rows"
    return report, [note("leakage", (
        f"{len(leaked)} of the {len(part.rows)} {part.split} rows ({share:.0%}) {are} "
        f"({shown}{and_more(min(3, len(leaked)), len(leaked))}): the "
        f"{part.split} metrics score them as if unseen"), split=part.split)]


def _conflicts(first: np.ndarray, feature_first: np.ndarray, places: Places,
               label_at) -> tuple[dict, list[dict]]:
    """Rows whose features are another row's, with another label."""
    distinct_rows = np.flatnonzero(first == np.arange(len(first)))
    labels_per_group = np.bincount(feature_first[distinct_rows], minlength=len(first))
    torn = np.flatnonzero(labels_per_group > 1)  # feature groups with several labels
    rows_in = np.isin(feature_first, torn)
    examples = []
    for group in torn[:EXAMPLES]:
        rows = distinct_rows[feature_first[distinct_rows] == group][:3]
        examples.append([{**places.of(int(r)), "label": label_at(int(r))}
                         for r in rows])
    report = {"groups": len(torn), "rows": int(rows_in.sum()), "examples": examples}
    if not len(torn):
        return report, []
    shown = "; ".join(" vs ".join(f"{places.say(p)} ({p['label']!r})" for p in group)
                      for group in examples[:3])
    return report, [note("conflict", (
        f"{int(rows_in.sum())} rows share their features with a row of another label, in "
        f"{len(torn)} group{'s' if len(torn) > 1 else ''} ({shown}"
        f"{and_more(min(3, len(torn)), len(torn))}): no model can fit both"))]
