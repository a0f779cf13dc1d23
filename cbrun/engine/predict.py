"""`cbrun predict`: a run's model on new samples of its kind (cbrun/engine/inputs.py), one
row per sample: the sample's name (the image file, else its row number from 1), the
columns of a table input that `--keep` names, then for each output the predicted class and
its probability (and the next `top_k - 1` classes), or the raw outputs
(cbrun/engine/outputs.py). Written as CSV, Parquet or .npz."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from cbrun.engine.data import eval_data
from cbrun.engine.inputs import Inputs, check_fits, unlabelled
from cbrun.engine.outputs import by_output, model_outputs, output_tasks
from cbrun.engine.runmodel import load_run_model
from cbrun.engine.sources import Split
from cbrun.engine.sources.images import images_named
from cbrun.errors import UsageError
from cbrun.run.checkpoints import Checkpoint
from cbrun.run.handle import OpenRun


def predict_run(run: OpenRun, checkpoint: Checkpoint, source: Path, top_k: int = 1,
                keep: tuple[str, ...] = ()
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], Inputs]:
    """({column: value per sample}, {output name: raw outputs}, the inputs read). `keep`:
    columns of a table input copied into the predictions after the row number."""
    inputs = unlabelled(run, source, keep)
    model = load_run_model(run, checkpoint, compile=False)
    check_fits(source.name, Split(inputs.x), run, model)
    count = len(inputs.ids)
    data, kwargs = eval_data(Split(inputs.x, np.zeros(count, np.int32)),
                             run.config.data.batch_size)
    x = data[0] if isinstance(data, tuple) else data
    with images_named([Split(inputs.x)], UsageError):  # a file that does not decode
        predicted = model.predict(x, verbose=0, **kwargs)
    outputs = model_outputs(model)
    arrays = by_output(predicted, [name for name, _ in outputs])
    tasks = output_tasks(run.config, run.run_dir, outputs)
    first = "file" if run.config.data.source == "images" else "row"
    columns: dict[str, np.ndarray] = {first: np.array(inputs.ids, dtype=object)}
    predicted_columns: dict[str, np.ndarray] = {}
    raw = {}
    for (name, _), task, values in zip(outputs, tasks, arrays, strict=True):
        predicted_columns.update(task.columns(values, top_k))
        raw[f"{name}_raw" if len(outputs) > 1 else "raw"] = values
    kept = inputs.kept or {}
    # The raw outputs are arrays of an .npz beside the columns: their names are taken too.
    names = [first, *predicted_columns, *raw]
    taken = [c for c in kept if c in names]
    if taken:
        raise UsageError(f"--keep {taken[0]}: the predictions have a column {taken[0]!r} "
                         f"already ({', '.join(names)}); rename that column in "
                         f"{source.name}")
    return {**columns, **kept, **predicted_columns}, raw, inputs


def write_predictions(path: Path, columns: dict[str, np.ndarray],
                      raw: dict[str, np.ndarray]) -> None:
    """A CSV of the columns, or an .npz of the columns plus the raw outputs, as arrays;
    written whole or not at all (cbrun/run/outpath.py)."""
    from cbrun.run.outpath import replace_with

    suffix = path.suffix.lower()
    if suffix == ".npz":
        arrays = {name: (values.astype(str) if values.dtype == object else values)
                  for name, values in columns.items()}
        replace_with(path, lambda partial: _savez(partial, {**arrays, **raw}))
        return
    if suffix == ".parquet":
        replace_with(path, lambda partial: _write_parquet(partial, columns))
        return
    replace_with(path, lambda partial: _write_csv(partial, columns))


def _write_parquet(path: Path, columns: dict[str, np.ndarray]) -> None:
    """One Parquet column per column: numbers stay numbers (a probability a double, a
    kept integer column int64), text is text, a missing value is null."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def array(name: str, values: np.ndarray):
        listed = values.tolist() if values.dtype == object else None
        # A table's row numbers are kept as text for the CSV; in Parquet they are numbers.
        if name == "row" and listed is not None and all(
                isinstance(v, str) and v.isdigit() for v in listed):
            return pa.array([int(v) for v in listed], type=pa.int64())
        return pa.array(listed if listed is not None else values)

    pq.write_table(pa.table({name: array(name, values) for name, values in columns.items()}),
                   path)


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in zip(*columns.values(), strict=True):
            writer.writerow([csv_cell(v) for v in row])


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez's format, written member by member: np.savez takes the names as keyword
    arguments, and its own first parameter is called `file`, the column images have."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, value in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def csv_cell(value) -> str:
    if value is None:  # a kept column's missing value: an empty cell, as it was read
        return ""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)
