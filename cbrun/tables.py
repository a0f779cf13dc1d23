"""Tables (CSV, Parquet) to arrays, without TensorFlow: the same code checks a config
before a run directory exists and feeds the run.

Numeric columns stay numbers. A string column is a category: its vocabulary is the sorted
values of the training rows, value i maps to id i + 1 and a value never seen in training
to 0. A string label maps to its class index, and a class the training rows never show is
an error (the model would have no output for it). What was learned is returned as
`artifacts`, saved under runs/<id>/data/, and `encode_table` re-applies it to new rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

Arrays = Any  # an ndarray, or {name: ndarray} for named inputs or outputs


class TableProblem(ValueError):
    def __init__(self, loc: tuple[Any, ...], message: str):
        super().__init__(message)
        self.loc = loc


def _is_text(column) -> bool:
    import pyarrow as pa

    kind = column.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _usable(column) -> bool:
    import pyarrow as pa

    kind = column.type
    return (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            or pa.types.is_null(kind) or _is_text(column))


def _check_present(table, columns: list[str], name: str, loc) -> None:
    """Every used column holds numbers, true/false or text, and no value is missing; all
    the columns at fault are named at once."""
    odd = [f"{c!r} ({table.column(c).type})" for c in columns if not _usable(table.column(c))]
    if odd:
        raise TableProblem(loc, f"column{'s' if len(odd) > 1 else ''} {', '.join(odd)} of "
                                f"{name} hold{'' if len(odd) > 1 else 's'} neither numbers, "
                                "true/false nor text; leave "
                                f"{'them' if len(odd) > 1 else 'it'} out of features, or "
                                "turn the values into numbers first (a date into a day "
                                "number, for example)")
    gaps = []
    for column in columns:
        nulls = table.column(column).null_count
        if nulls:
            mask = table.column(column).is_null().to_numpy(zero_copy_only=False)
            rows = ", ".join(str(r + 2) for r in np.flatnonzero(mask)[:5])  # +2: header, 1-based
            gaps.append(f"column {column!r} of {name} has {nulls} missing value"
                        f"{'s' if nulls > 1 else ''} (line {rows}{', ...' if nulls > 5 else ''}"
                        " of the file)")
    if gaps:
        raise TableProblem(loc, f"{'; '.join(gaps)}; fill or drop them before training")


def learn(table, cfg) -> dict[str, Any]:
    """Vocabularies of the string feature columns and classes of string labels, from the
    training rows."""
    groups = cfg.feature_groups(table.column_names)
    features = [c for g in (groups.values() if isinstance(groups, dict) else [groups])
                for c in g]
    for column in cfg.text:
        if not _is_text(table.column(column)):
            raise TableProblem(("data", "text"), f"column {column!r} holds "
                                                 f"{table.column(column).type} values, not text")
    vocab = {c: sorted(set(table.column(c).to_pylist())) for c in features
             if _is_text(table.column(c)) and c not in cfg.text}
    classes = {c: sorted(set(table.column(c).to_pylist())) for c in cfg.label_columns()
               if _is_text(table.column(c))}
    return {"features": groups, "labels": cfg.label_columns(),
            "vocabularies": vocab, "classes": classes, "text": list(cfg.text)}


def _column(table, name: str, mapping: list[str] | None) -> np.ndarray:
    values = table.column(name)
    if mapping is None:
        return values.to_numpy(zero_copy_only=False)
    index = {v: i for i, v in enumerate(mapping)}
    return np.array([index.get(v, -1) for v in values.to_pylist()], dtype=np.int64)


def encode_table(table, artifacts: dict[str, Any], name: str, labels: bool = True,
                 loc=("data",)) -> tuple[Arrays, Arrays | None]:
    """(x, y) of a table with what `learn` found; y is None when `labels` is False."""
    groups = artifacts["features"]

    text = set(artifacts.get("text", []))  # runs before text columns have none

    def features(columns: list[str]) -> np.ndarray:
        if text.intersection(columns):  # a text input: raw strings, checked to be all text
            return np.stack([np.asarray(table.column(c).to_pylist(), dtype=str)
                             for c in columns], axis=1)
        parts = []
        for column in columns:
            vocab = artifacts["vocabularies"].get(column)
            values = _column(table, column, vocab)
            parts.append(values + 1 if vocab is not None else values)
        return np.stack(parts, axis=1).astype(np.float32)

    x = ({key: features(cols) for key, cols in groups.items()} if isinstance(groups, dict)
         else features(groups))
    if not labels:
        return x, None
    ys = {}
    for column in artifacts["labels"]:
        classes = artifacts["classes"].get(column)
        values = _column(table, column, classes)
        if classes is not None:
            unseen = sorted({v for v, i in zip(table.column(column).to_pylist(), values)
                             if i < 0})
            if unseen:
                raise TableProblem(loc, f"{name} has label value{'s' if len(unseen) > 1 else ''}"
                                        f" {', '.join(map(repr, unseen[:5]))} in column "
                                        f"{column!r} that the training rows never show "
                                        f"(classes: {', '.join(map(repr, classes[:10]))})")
            values = values.astype(np.int32)
        elif values.dtype.kind == "f":
            values = values.astype(np.float32)
        elif values.dtype.kind in "iub":
            values = values.astype(np.int32)
        ys[column] = values
    y = ys if len(ys) > 1 else next(iter(ys.values()))
    return x, y


def label_values(table, cfg):
    """The one label column's values (for a stratified split), or None for several."""
    labels = cfg.label_columns()
    if len(labels) != 1:
        return None
    return table.column(labels[0]).to_numpy(zero_copy_only=False)


def encode_splits(cfg, folder: Path, seed: int
                  ) -> tuple[dict[str, tuple[Arrays, Arrays] | None], dict, dict]:
    """{'train': (x, y), 'validation': ... or None, 'test': ... or None}, the artifacts,
    and how the rows were split (`Cut.summary()`)."""
    from cbrun.data.splits import draw

    groups_of = {}

    def read(field: str):
        path = folder / getattr(cfg, field)
        table = cfg.read(path)
        groups = cfg.feature_groups(table.column_names)
        used = cfg.label_columns() + [c for g in (groups.values() if isinstance(groups, dict)
                                                  else [groups]) for c in g]
        _check_present(table, used, path.name, ("data", field))
        groups_of[field] = path.name
        return table

    table = read("path")
    cut = draw(table.num_rows, cfg.validation_split, cfg.test_split, cfg.split, seed,
               labels=label_values(table, cfg))
    parts = {"train": table.take(cut.train),
             "validation": table.take(cut.validation) if cfg.validation_split else None,
             "test": table.take(cut.test) if cfg.test_split else None}
    if cfg.validation_path:
        parts["validation"] = read("validation_path")
    if cfg.test_path:
        parts["test"] = read("test_path")
    if parts["train"].num_rows == 0:
        raise TableProblem(("data", "path"), f"{groups_of['path']} leaves no training rows")
    artifacts = learn(parts["train"], cfg)
    out = {}
    for split, part in parts.items():
        field = {"train": "path"}.get(split, f"{split}_path")
        name = groups_of.get(field, groups_of["path"])
        where = f"{name} (its {split} rows)" if split != "train" else name
        out[split] = (None if part is None else
                      encode_table(part, artifacts, where, loc=("data", field)
                                   if getattr(cfg, field, None) else ("data", "path")))
    return out, artifacts, cut.summary()
