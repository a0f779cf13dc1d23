"""`cbrun predict` on a table of several files (a folder of shards, a glob): read a record
batch at a time, mapped as training mapped its rows (data/table.json), predicted, and
written as it goes, so memory does not grow with the table. The same columns in the same
formats as predict on one file (cbrun/engine/predict.py): CSV rows appended, Parquet row
groups appended, an .npz's arrays written to parts on disk and joined into the archive at
the end. The output appears whole or not at all (cbrun/run/outpath.replace_with)."""

from __future__ import annotations

import csv
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from cbrun.data.shards import Piece, ShardProblem, is_glob, kind_of, open_shards
from cbrun.engine.data import eval_data
from cbrun.engine.inputs import check_columns, check_fits, table_artifacts, unseen_notes
from cbrun.engine.outputs import by_output, model_outputs, output_tasks
from cbrun.engine.predict import csv_cell
from cbrun.engine.runmodel import load_run_model
from cbrun.engine.sources import Split
from cbrun.errors import UsageError

CHUNK_ROWS = 65_536  # rows predicted at a time, rounded down to whole batches


def is_shards(run, source: Path) -> bool:
    """A table input of several files (a folder or a glob) for a run that trained on a
    table: predicted a batch at a time."""
    return run.config.data.source in ("csv", "parquet") and (
        source.is_dir() or (is_glob(str(source)) and not source.exists()))


def predict_shards(run, checkpoint, source: Path, output: Path, top_k: int = 1,
                   keep: tuple[str, ...] = ()) -> tuple[int, list[str]]:
    """Predict every row of the table `source` into `output`: (rows predicted, notes)."""
    from cbrun.run.outpath import replace_with

    cfg = run.config.data
    artifacts = table_artifacts(run)
    try:
        shards = open_shards(str(source), Path("."), cfg.source, **cfg.csv_options())
    except ShardProblem as exc:
        raise UsageError(f"INPUT {exc}") from None
    wanted = check_columns(source, shards.columns, artifacts, cfg, False, keep)
    mapped = {*artifacts["vocabularies"], *artifacts["classes"], *artifacts.get("text", [])}
    for column in wanted:
        if column not in mapped and kind_of(shards.schema.field(column).type) == "text":
            raise UsageError(f"column {column!r} of {source} holds text, but the run trained "
                             "on numbers in it")
    model = load_run_model(run, checkpoint, compile=False)
    job = _Job(run, shards, artifacts, wanted, keep, model, top_k, source)
    replace_with(output, job.write_into)
    if not job.rows:
        raise UsageError(f"{source} has no rows, only its header: nothing to predict")
    return job.rows, job.notes


class _Job:
    def __init__(self, run, shards, artifacts, wanted, keep, model, top_k, source):
        self.run, self.shards, self.artifacts, self.wanted = run, shards, artifacts, wanted
        self.keep, self.model, self.top_k, self.source = keep, model, top_k, source
        self.outputs = model_outputs(model)
        self.tasks = output_tasks(run.config, run.run_dir, self.outputs)
        self.rows, self.notes, self.known = 0, [], {}

    def write_into(self, partial: Path) -> None:
        import pyarrow as pa

        from cbrun.data.stream import Reader

        writer = WRITERS[partial.suffix.lower()](partial, self.shards)
        reader = Reader(self.shards, ("INPUT",))
        read = list(dict.fromkeys(self.wanted + list(self.keep)))
        size = self.run.config.data.batch_size
        # Whole batches from the table's first row, as predict on one file cuts them: the
        # numbers of a batch depend on the rows it is computed with.
        chunk = max(size, CHUNK_ROWS - CHUNK_ROWS % size)
        pending, waiting = [], 0
        try:
            for index in range(len(self.shards.files)):
                at = 0
                for batch in reader.batches(Piece(index, None, 0, 0), read):
                    self._missing(batch, index, at)
                    at += batch.num_rows
                    pending.append(batch)
                    waiting += batch.num_rows
                    if waiting >= chunk:
                        rows = pa.Table.from_batches(pending)
                        writer.add(*self._predict(rows.slice(0, chunk)))
                        pending, waiting = rows.slice(chunk).to_batches(), waiting - chunk
            if waiting:
                writer.add(*self._predict(pa.Table.from_batches(pending)))
            writer.close()
        except BaseException:
            writer.abandon()
            raise

    def _missing(self, batch, index: int, at: int) -> None:
        for column in self.wanted:
            values = batch.column(column)
            if values.null_count:
                row = at + int(np.flatnonzero(values.is_null().to_numpy(
                    zero_copy_only=False))[0])
                unit, number = ("line", row + 2) if self.shards.source == "csv" else \
                    ("row", row + 1)
                raise UsageError(f"column {column!r} of "
                                 f"{self.shards.name(self.shards.files[index])} has missing "
                                 f"values ({unit} {number}); fill or drop them")

    def _predict(self, batch) -> tuple[dict, dict]:
        from cbrun.data.tables import TableProblem, encode_table

        try:
            x, _ = encode_table(batch, self.artifacts, self.source.name, labels=False,
                                text_objects=True)
        except TableProblem as exc:
            raise UsageError(str(exc)) from None
        if not self.rows:
            check_fits(self.source.name, Split(x), self.run, self.model)
        self.notes += unseen_notes(batch, self.artifacts, self.known)
        # As predict on one file feeds its rows (cbrun/engine/predict.py): the same batches
        # the same way, so the same numbers to the last bit.
        data, kwargs = eval_data(Split(x, np.zeros(batch.num_rows, np.int32)),
                                 self.run.config.data.batch_size)
        arrays = by_output(self.model.predict(data[0] if isinstance(data, tuple) else data,
                                              verbose=0, **kwargs),
                           [name for name, _ in self.outputs])
        ids = np.array([str(i) for i in range(self.rows + 1, self.rows + batch.num_rows + 1)],
                       dtype=object)
        self.rows += batch.num_rows
        columns: dict[str, np.ndarray] = {"row": ids}
        for column in self.keep:
            kept = np.empty(batch.num_rows, dtype=object)
            kept[:] = batch.column(column).to_pylist()
            columns[column] = kept
        raw, predicted = {}, {}
        for (name, _), task, values in zip(self.outputs, self.tasks, arrays, strict=True):
            predicted.update(task.columns(values, self.top_k))
            raw[f"{name}_raw" if len(self.outputs) > 1 else "raw"] = values
        taken = [c for c in self.keep if c in ["row", *predicted, *raw]]
        if taken:
            raise UsageError(f"--keep {taken[0]}: the predictions have a column {taken[0]!r} "
                             f"already; rename that column in {self.source}")
        return {**columns, **predicted}, raw


class _Csv:
    def __init__(self, path: Path, shards):
        self.handle = path.open("w", newline="")
        self.writer = csv.writer(self.handle)
        self.started = False

    def add(self, columns: dict, raw: dict) -> None:
        if not self.started:
            self.writer.writerow(columns)
            self.started = True
        for row in zip(*columns.values(), strict=True):
            self.writer.writerow([csv_cell(v) for v in row])

    def close(self) -> None:
        self.handle.close()

    def abandon(self) -> None:
        self.handle.close()


class _Parquet:
    """Row groups appended to one file, each column typed as the first batch typed it (a
    kept column as the input table types it)."""

    def __init__(self, path: Path, shards):
        self.path, self.shards, self.writer = path, shards, None

    def _array(self, name: str, values: np.ndarray):
        import pyarrow as pa

        if name == "row":
            return pa.array([int(v) for v in values], type=pa.int64())
        if name in self.shards.schema.names and values.dtype == object:
            return pa.array(values.tolist(), type=self.shards.schema.field(name).type)
        return pa.array(values.tolist() if values.dtype == object else values)

    def add(self, columns: dict, raw: dict) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({name: self._array(name, v) for name, v in columns.items()})
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table.cast(self.writer.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    abandon = close


class _Npz:
    """Each array's rows appended to a part of its own on disk; at the end each part
    becomes an .npy member of the archive (text as numpy's fixed-width strings, as wide
    as its longest value, as np.savez writes them)."""

    def __init__(self, path: Path, shards):
        self.path = path
        self.folder = Path(tempfile.mkdtemp(prefix=".parts-", dir=path.parent))
        self.parts: dict[str, list[tuple[np.dtype, int]]] = {}
        self.tails: dict[str, tuple] = {}

    def add(self, columns: dict, raw: dict) -> None:
        arrays = {name: (v.astype(str) if v.dtype == object else v)
                  for name, v in columns.items()}
        for name, value in {**arrays, **raw}.items():
            value = np.ascontiguousarray(value)
            with (self.folder / _safe(name)).open("ab") as handle:
                handle.write(value.tobytes())
            self.parts.setdefault(name, []).append((value.dtype, len(value)))
            self.tails[name] = value.shape[1:]

    def close(self) -> None:
        import zipfile

        try:
            with zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_STORED) as archive:
                for name, parts in self.parts.items():
                    self._member(archive, name, parts)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _member(self, archive, name: str, parts: list) -> None:
        kinds = [dtype for dtype, _ in parts]
        final = max(kinds, key=lambda d: d.itemsize) if kinds[0].kind == "U" else kinds[0]
        rows = sum(n for _, n in parts)
        tail = self.tails[name]
        header = {"descr": np.lib.format.dtype_to_descr(final), "fortran_order": False,
                  "shape": (rows, *tail)}
        width = int(np.prod(tail)) if tail else 1
        with archive.open(f"{name}.npy", "w", force_zip64=True) as member, \
                (self.folder / _safe(name)).open("rb") as body:
            np.lib.format.write_array_header_2_0(member, header)
            for dtype, n in parts:
                chunk = np.frombuffer(body.read(n * width * dtype.itemsize), dtype=dtype)
                member.write(chunk.astype(final).tobytes())

    def abandon(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _safe(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").hex()


WRITERS: dict[str, Any] = {".csv": _Csv, ".parquet": _Parquet, ".npz": _Npz}
