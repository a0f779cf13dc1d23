"""What `cbrun data check` says about a table's columns and its label: each column's kind,
missing and distinct values and range, the columns that cannot help the model, and the
label's classes in each split (repeated rows: cbrun/data/duplicates.py).

The splits come in as `Part`s: rows of one table that holds every file, so the same value
has the same key in each of them (cbrun/data/rowkeys.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cbrun.data import rowkeys
from cbrun.data.columns import missing_rows, plain, profile
from cbrun.data.splits import classes_of

EXAMPLES = 5  # rows or groups named in a finding
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Part:
    """The rows of one split: indices into the table, and where they are in their file."""

    split: str
    file: str
    rows: np.ndarray  # indices into the table that holds every file
    numbers: np.ndarray  # each row's 1-based position among its file's rows
    header: bool = False  # a CSV: its line numbers are one more than its row numbers

    def place(self, index: int) -> dict[str, Any]:
        """{split, file, row, line} of the part's index-th row."""
        row = int(self.numbers[index])
        return {"split": self.split, "file": self.file, "row": row,
                "line": row + 1 if self.header else None}


def place_text(place: dict[str, Any], by: str | None = "split") -> str:
    """'validation line 7', 'val.csv line 7' (`by`: file) or 'line 7' (`by`: None)."""
    where = f"line {place['line']}" if place["line"] is not None else f"row {place['row']}"
    return f"{place[by]} {where}" if by else where


class Places:
    """Where each row of the table is: its split and its position in its file."""

    def __init__(self, parts: list[Part], total: int):
        self.parts = parts
        # Splits drawn from one file are named by split; separate files by file name.
        self.by = "file" if len({part.file for part in parts}) > 1 else "split"
        self.part_of = np.full(total, -1, dtype=np.int64)
        self.index_in = np.zeros(total, dtype=np.int64)
        for number, part in enumerate(parts):
            self.part_of[part.rows] = number
            self.index_in[part.rows] = np.arange(len(part.rows))

    def of(self, row: int) -> dict[str, Any]:
        return self.parts[self.part_of[row]].place(int(self.index_in[row]))

    def say(self, place: dict[str, Any]) -> str:
        return place_text(place, self.by)

    def text(self, rows) -> str:
        """'train line 2, 6, 10; validation line 11': rows in their order, a run of one
        split (or file) named once."""
        runs: list[tuple[str, list[str]]] = []
        for row in rows:
            place = self.of(int(row))
            name, where = place[self.by], place_text(place, None).split(" ")
            if runs and runs[-1][0] == name:
                runs[-1][1].append(where[1])
            else:
                runs.append((name, [where[0], where[1]]))
        return "; ".join(f"{name} {unit} {', '.join(numbers)}"
                         for name, (unit, *numbers) in runs)


def and_more(shown: int, total: int) -> str:
    return f" and {total - shown} more" if total > shown else ""


@dataclass
class Scan:
    """One pass over the columns: their profiles, and the rows' hashes (rowkeys) over the
    features, then over the features and the labels."""

    profiles: list[dict]
    findings: list[dict]
    by_features: np.ndarray
    whole: np.ndarray


def scan(table, features: list[str], labels: list[str], text: list[str],
         places: Places) -> Scan:
    """Each column is keyed once: the key counts its distinct values and joins the row
    hashes when the model uses the column."""
    order = features + labels + [c for c in table.column_names
                                 if c not in features and c not in labels]
    hasher = rowkeys.Hasher(table.num_rows)
    by_features = hasher.hashes.copy()
    profiles, findings = {}, []
    for index, name in enumerate(order):
        if index == len(features):
            by_features = hasher.hashes.copy()
        key = rowkeys.column_key(table.column(name))
        info = profile(table, name, text=name in text, key=key)
        info["use"] = ("label" if name in labels else "feature" if name in features
                       else "unused")
        profiles[name] = info
        if info["use"] == "unused":
            continue
        findings += _column_findings(table, info, places)
        if key is not None:
            hasher.add(key)
    if len(order) == len(features):
        by_features = hasher.hashes.copy()
    return Scan([profiles[c] for c in table.column_names], findings, by_features,
                hasher.hashes)


# The kinds a run takes (cbrun/data/tables.py): dates, bytes, empty columns are refused.
USABLE = ("number", "integer", "bool", "category", "free text", "text")


def _column_findings(table, info: dict, places: Places) -> list[dict]:
    name, found = info["name"], []
    if info["kind"] not in USABLE:
        found.append(note("kind", (
            f"column {name!r} holds {info['kind']} values ({info['type']}): training takes "
            "numbers, true/false and text only; leave it out or convert it")))
    if info["missing"]:
        rows = missing_rows(table, name)
        found.append(note("missing", (
            f"column {name!r} has {info['missing']} missing value"
            f"{'s' if info['missing'] > 1 else ''} ({places.text(rows)}"
            f"{and_more(len(rows), info['missing'])}): training refuses them; fill or drop "
            "them")))
    if info["nan"]:
        rows = missing_rows(table, name, nan=True)
        found.append(note("nan", (
            f"column {name!r} holds {info['nan']} NaN value{'s' if info['nan'] > 1 else ''} "
            f"({places.text(rows)}{and_more(len(rows), info['nan'])}): a NaN that reaches "
            "the model makes the loss NaN")))
    if info["constant"] and info["use"] == "feature":
        value = plain(table.column(name)[0].as_py())
        found.append(note("constant", (
            f"column {name!r} holds one value ({value!r}) in every row: it tells the model "
            "nothing; leave it out of features")))
    present = table.num_rows - info["missing"]
    if (info["kind"] == "category" and info["use"] == "feature" and present >= 20
            and info["distinct"] == present):
        found.append(note("identifier", (
            f"column {name!r} has a different value in every row: as a category it is a row "
            "name, and a value never seen in training means nothing to the model; leave it "
            "out of features")))
    return [{**finding, "column": name} for finding in found]


def note(kind: str, message: str, **about: Any) -> dict:
    """{kind, message, and what it is about: column, split, classes, file}."""
    return {"kind": kind, "message": message, **about}


# ---------------------------------------------------------------- the label in each split

def label_report(name: str, values: np.ndarray, parts: list[Part],
                 present: np.ndarray | None = None) -> tuple[dict, list[dict]]:
    """({name, kind: classes, classes, counts: {split: [count per class]}} or {name, kind:
    number, stats: {split: {rows, min, mean, max}}}, findings) of one label's values (one
    per row of the table); `present`: where a value is not missing (NaN never is)."""
    if present is None:
        present = np.ones(len(values), dtype=bool)
    if values.dtype.kind == "f":
        present = present & ~np.isnan(values)
    found = classes_of(values[present]) if present.any() else None
    if found is not None:
        classes, codes = found
        all_codes = np.full(len(values), -1, dtype=np.int64)
        all_codes[present] = codes
        counts = {part.split: np.bincount(all_codes[part.rows][all_codes[part.rows] >= 0],
                                          minlength=len(classes)).tolist() for part in parts}
        names = [plain(c) for c in classes.tolist()]
        return ({"name": name, "kind": "classes", "classes": names, "counts": counts},
                _unseen(name, names, counts))
    stats = {}
    for part in parts:
        mine = values[part.rows][present[part.rows]]
        number = mine.dtype.kind in "iufb" and len(mine)
        stats[part.split] = {"rows": len(part.rows),
                             "min": plain(mine.min()) if number else None,
                             "mean": plain(float(mine.astype(np.float64).mean())) if number
                             else None,
                             "max": plain(mine.max()) if number else None}
    return {"name": name, "kind": "number", "stats": stats}, []


def _unseen(name: str, classes: list, counts: dict[str, list[int]]) -> list[dict]:
    """A class that a held-out split shows and training does not: the model has no output
    for it (cbrun refuses the table; a class folder only there is refused too)."""
    train = counts.get("train")
    if train is None:
        return []
    found = []
    held = [c for c, count in zip(classes, train, strict=True) if count]
    if len(held) == 1:
        found.append(note("classes", (
            f"the training rows of {name!r} hold one class ({held[0]!r}): there is nothing "
            "to tell apart"), split="train", classes=held))
    for split in SPLITS[1:]:
        extra = [c for c, mine, theirs in zip(classes, counts.get(split, []), train,
                                              strict=False) if mine and not theirs]
        if extra:
            found.append(note("classes", (
                f"the {split} split has {len(extra)} class{'es' if len(extra) > 1 else ''} "
                f"of {name!r} that training lacks ({', '.join(map(repr, extra[:EXAMPLES]))}"
                f"{', ...' if len(extra) > EXAMPLES else ''}): the model has no output for "
                f"{'them' if len(extra) > 1 else 'it'}"), split=split, classes=extra))
    return found


def drawn_split(summary: dict, spec) -> dict:
    """How the held-out rows were drawn (`Cut.summary()`), and what was asked."""
    return {**summary, "validation_split": spec.validation_split,
            "test_split": spec.test_split, "asked": spec.split}
