"""What `cbrun data check` says about arrays (an .npz, the embedded digits): each array's
shape, type and range, the label's classes in each split, and samples that repeat.

A sample's bytes become the columns of a table of 64-bit words, so the table report's
duplicate finder (cbrun/data/report.py) serves arrays as it serves tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cbrun.config.data.table import first_line
from cbrun.data.columns import plain
from cbrun.data.duplicates import duplicates_report
from cbrun.data.report import Part, Places, drawn_split, label_report
from cbrun.errors import UsageError


def array_profile(name: str, values: np.ndarray) -> dict[str, Any]:
    numeric = values.dtype.kind in "iufb" and values.size
    nan = int(np.isnan(values).sum()) if values.dtype.kind == "f" else 0
    finite = values[~np.isnan(values)] if nan else values
    return {"name": name, "shape": list(values.shape), "dtype": str(values.dtype), "nan": nan,
            "min": plain(finite.min()) if numeric and finite.size else None,
            "max": plain(finite.max()) if numeric and finite.size else None}


def _words(values: np.ndarray) -> np.ndarray:
    """(samples, words): each sample's bytes as uint64 words; -0.0 as 0.0 and one NaN, so
    that equal numbers give equal words."""
    rows = np.ascontiguousarray(values.reshape(len(values), -1))
    if rows.dtype.kind == "f":
        rows = rows + rows.dtype.type(0)
        nan = np.isnan(rows)
        if nan.any():
            rows[nan] = np.nan
    raw = rows.view(np.uint8).reshape(len(rows), -1)
    pad = (-raw.shape[1]) % 8
    if pad:
        raw = np.concatenate([raw, np.zeros((len(raw), pad), dtype=np.uint8)], axis=1)
    return np.ascontiguousarray(raw).view(np.uint64)


def words_table(arrays: dict[str, np.ndarray]) -> tuple[Any, dict[str, list[str]]]:
    """(a pyarrow table of every array's words, {array name: its word columns})."""
    import pyarrow as pa

    columns, names = {}, {}
    for name, values in arrays.items():
        words = _words(values)
        names[name] = [f"{name}#{i}" for i in range(words.shape[1])]
        for column, index in zip(names[name], range(words.shape[1]), strict=True):
            columns[column] = pa.array(words[:, index])
    return pa.table(columns), names


def arrays_report(x: dict[str, np.ndarray], y: dict[str, np.ndarray], parts: list[Part]
                  ) -> dict:
    """The report of the samples `x` and targets `y` ({name: array}, the files' rows one
    after another), split into `parts`."""
    profiles = [{**array_profile(name, values), "use": use}
                for use, group in (("input", x), ("target", y))
                for name, values in group.items()]
    findings = [{"kind": "nan", "message": (
        f"array {p['name']!r} holds {p['nan']} NaN value{'s' if p['nan'] > 1 else ''}: a NaN "
        "that reaches the model makes the loss NaN")} for p in profiles if p["nan"]]
    labels = []
    if len(y) == 1:
        name, values = next(iter(y.items()))
        if values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1):
            section, found = label_report(name, values.reshape(len(values)), parts)
            labels.append(section)
            findings += found
    total = len(next(iter(x.values())))
    table, columns = words_table({**x, **y})
    places = Places(parts, total)
    features = [c for name in x for c in columns[name]]
    targets = [c for name in y for c in columns[name]]

    def label_at(row: int) -> Any:
        shown = [plain(values[row]) if values.ndim == 1 else "..." for values in y.values()]
        return shown[0] if len(shown) == 1 else shown

    duplicates, found = duplicates_report(table, features, targets, places, label_at)
    duplicates["columns"] = list(x) + list(y)
    findings += found
    return {"kind": "arrays", "arrays": profiles, "labels": labels,
            "duplicates": duplicates, "findings": findings}


def _arrays(source: str, path: Path | None, spec, data) -> tuple[dict, dict]:
    """({input name: array}, {target name: array}) of an npz (a config's x and y, or every
    array but `y` and the label) or of the digits."""
    import zipfile

    if source == "digits":
        from importlib import resources

        with resources.files("cbrun.datasets").joinpath("digits.npz").open("rb") as handle, \
                np.load(handle) as archive:
            return {"x": archive["x"]}, {"y": archive["y"]}
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise UsageError(f"{path} is not a readable .npz archive: {first_line(exc)}") from None
    if data is not None:
        def pick(names: Any) -> dict:
            return {names: arrays[names]} if isinstance(names, str) else \
                {key: arrays[name] for key, name in names.items()}

        return pick(data.x), pick(data.y)
    label = spec.label or ("y" if "y" in arrays else None)
    if label is not None and label not in arrays:
        raise UsageError(f"{path} has no array {label!r}; it has: {', '.join(arrays)}")
    x = {k: v for k, v in arrays.items() if k != label and v.ndim}
    lengths = {len(v) for v in [*x.values(), *([arrays[label]] if label else [])]}
    if len(lengths) > 1:
        raise UsageError(f"the arrays in {path} hold different numbers of samples "
                         f"({', '.join(f'{k}: {len(v)}' for k, v in arrays.items() if v.ndim)})")
    if not x:
        raise UsageError(f"{path} holds no array of samples besides the label")
    return x, ({label: arrays[label]} if label else {})


def arrays_check(source: str, files: dict[str, tuple[Path, str]], spec, seed: int,
                 data) -> dict:
    from cbrun.data.balance import split_warnings
    from cbrun.data.splits import draw

    main = files.get("path")
    x, y = _arrays(source, main[0] if main else None, spec, data)
    shown = main[1] if main else "digits"
    n = len(next(iter(x.values())))
    # split_arrays stratifies on y when it is one array, not a {name: array} mapping.
    single = next(iter(y.values())) if len(y) == 1 and isinstance(
        getattr(data, "y", "y"), str) else None
    # The draw of cbrun/engine/sources/arrays.split_arrays.
    cut = draw(n, spec.validation_split, spec.test_split, spec.split, seed, labels=single)
    parts = [Part("train", shown, cut.train, cut.train + 1)]
    for split in ("validation", "test"):
        if getattr(spec, f"{split}_split"):
            parts.append(Part(split, shown, getattr(cut, split), getattr(cut, split) + 1))
    offset = n
    for split in ("validation", "test"):
        if f"{split}_path" in files:
            their_x, their_y = _arrays(source, files[f"{split}_path"][0], spec, data)
            count = len(next(iter(their_x.values())))
            try:
                x = {k: np.concatenate([v, their_x[k]]) for k, v in x.items()}
                y = {k: np.concatenate([v, their_y[k]]) for k, v in y.items()}
            except ValueError as exc:
                raise UsageError(f"{files[f'{split}_path'][1]}'s arrays do not match "
                                 f"{shown}'s: {first_line(exc)}") from None
            rows = np.arange(offset, offset + count)
            parts.append(Part(split, files[f"{split}_path"][1], rows, rows - offset + 1))
            offset += count
    report = arrays_report(x, y, parts)
    drawn = bool(spec.validation_split or spec.test_split)
    if single is not None and len(parts) > 1:
        values = next(iter(y.values()))
        summary = cut.summary() if drawn else None
        report["findings"] += [{"kind": "split", "message": line} for line in split_warnings(
            {part.split: values[part.rows] for part in parts}, spec, summary)]
    return {**report, "rows": {part.split: len(part.rows) for part in parts},
            "split": drawn_split(cut.summary(), spec) if drawn else None}
