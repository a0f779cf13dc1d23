"""What `source: csv` and `source: parquet` share: a target column (or several) and the
feature columns, every other column by default; a path that is a file, a folder of shards
or a glob; and whether the table is read whole or streamed (cbrun/data/stream.py).

The preflight reads the files with pyarrow (no TensorFlow): files that are not tables,
shards whose columns differ, columns that do not exist, missing values and label classes
the training file never shows are reported at the line of the config, before a run
directory exists. A table read whole is checked whole; a streamed one from its footers,
headers and label columns (a streamed CSV's missing values are found by the run's first
pass over it)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from cbrun.config.data.common import FileSource, Found, missing_path
from cbrun.suggest import did_you_mean


class TableSource(FileSource):
    """A table: one row per sample. String columns are categories, mapped to integer ids
    with a vocabulary saved in the run directory (`data/table.json`); columns listed in `text`
    stay raw strings."""

    label: str | list[str] = Field(
        description="The target column; a list of columns for a model with several "
                    "outputs (named after the columns).")
    features: list[str] | dict[str, list[str]] | None = Field(
        None, description="The input columns (default: every column but the labels); a "
                          "mapping {input name: [columns]} for a model with named inputs.")

    text: list[str] = Field(
        default_factory=list, description="String columns kept as raw text (no vocabulary) for "
                                          "a TextVectorization or StringLookup layer with "
                                          "`adapt: true`; a named input of text columns only "
                                          "(features: {review: [review], ...}) or the only "
                                          "feature.")

    stream: Literal["auto"] | bool = Field(
        "auto", description="Read the table whole (false) or stream it a window at a time "
                            "(true); auto streams a table estimated to take more than a "
                            "quarter of the memory available. A run keeps what it chose.")
    shuffle_window: int | None = Field(
        None, gt=0, description="A streamed table's rows are shuffled within windows of this "
                                "many rows (rounded down to whole batches), after its pieces "
                                "(row groups, CSV files) are; default: as many rows as take "
                                "64 MB.")
    max_categories: int = Field(
        10_000, gt=0, description="A category column keeps its this-many most frequent "
                                  "training values (ids 1..N); every other value shares the "
                                  "unknown id 0. Defaults to 10000.")

    @field_validator("label", "features")
    @classmethod
    def _not_empty(cls, value):
        if value is not None and not value:
            raise ValueError("must name at least one column")
        return value

    def named_inputs(self) -> tuple[str, list[str]] | None:
        return ("features", list(self.features)) if isinstance(self.features, dict) else None

    def named_outputs(self) -> tuple[str, list[str]] | None:
        return ("label", list(self.label)) if isinstance(self.label, list) and \
            len(self.label) > 1 else None

    def label_columns(self) -> list[str]:
        return [self.label] if isinstance(self.label, str) else list(self.label)

    def feature_groups(self, columns: list[str]) -> dict[str, list[str]] | list[str]:
        if self.features is None:
            return [c for c in columns if c not in self.label_columns()]
        return self.features

    def sample_shapes(self, folder: Path):
        try:
            groups = self.feature_groups(self.open_table(folder, self.path).columns)
        except (ValueError, OSError):
            return None
        if isinstance(groups, dict):
            return {key: [len(columns)] for key, columns in groups.items()}
        return {None: [len(groups)]}

    def csv_options(self) -> dict:
        """What a CSV reader needs (a Parquet source has none)."""
        return {}

    def used_columns(self, columns: list[str]) -> list[str]:
        groups = self.feature_groups(columns)
        return self.label_columns() + [c for g in (groups.values() if isinstance(groups, dict)
                                                   else [groups]) for c in g]

    def open_table(self, folder: Path, value: str):
        """The files of `value` (a file, a folder of shards, a glob) with their schemas
        checked against each other (cbrun/data/shards.py), or ValueError naming the file."""
        from cbrun.data.shards import open_shards

        used = None if self.features is None else self.used_columns([])
        return open_shards(value, folder, self.source, used, **self.csv_options())

    def read_columns(self, shards) -> list[str]:
        """The columns a run reads of a table: the labels and features (for a CSV, those
        whose numbers must stay numbers)."""
        return self.used_columns(shards.columns)

    def read(self, path: Path, columns: list[str] | None = None):
        """The table at `path` (a file, a folder or a glob; only `columns`, when given), or
        ValueError."""
        from cbrun.data.tables import read_all

        shards = self.open_table(Path.cwd(), str(path))
        if columns is None and self.source == "csv":
            columns = self.read_columns(shards)
        return read_all(shards, columns)

    def table_files(self, folder: Path, value: str) -> tuple[Path, list[Path]] | None:
        """(the root, the files) a path field names: what the fingerprint hashes."""
        from cbrun.data.shards import ShardProblem, list_files

        try:
            return list_files(value, folder, self.source)
        except ShardProblem:
            return None

    def folder_files(self, folder: Path) -> list[Path]:
        found = self.table_files(folder, ".")
        return found[1] if found else []

    def stream_decision(self, folder: Path, run_dir: Path | None = None):
        """Whether the run streams the table (cbrun/data/stream.decide); a run's own record
        first."""
        import json

        from cbrun.data.stream import STREAM_FILE, decide

        recorded = None
        if run_dir is not None:
            try:
                recorded = json.loads((run_dir / "data" / STREAM_FILE).read_text())
            except (OSError, ValueError):
                recorded = None
        return decide(self, self.open_table(folder, self.path), recorded)

    def file_labels(self, folder: Path):
        labels = self.label_columns()
        if len(labels) != 1:
            return None
        try:
            if self.stream_decision(folder).stream:
                return None  # split_labels draws from the codes instead
            table = self.read(folder / self.path, labels)
        except (ValueError, OSError, KeyError):
            return None  # the preflight says what is wrong with the file
        return table.column(labels[0]).to_numpy(zero_copy_only=False)

    def split_labels(self, folder: Path, seed: int):
        """As every source's, and for a streamed table from its label column's codes (a
        class's index among the sorted classes), never its values as Python objects."""
        found = super().split_labels(folder, seed)
        if found is not None or len(self.label_columns()) != 1 or \
                not (self.validation_split or self.test_split):
            return found
        from cbrun.data.stream import count_splits
        from cbrun.data.tally import SPLITS, Counted

        try:
            shards = {field: self.open_table(folder, value)
                      for field, value in self.paths().items()}
            if not self.stream_decision(folder).stream:
                return None
            counted = count_splits(self, shards, seed, self.label_columns())
        except (ValueError, OSError):  # a TableProblem too: the preflight names it
            return None
        from cbrun.data.stream import split_summary

        label, tally = self.label_columns()[0], counted.tally
        if not tally.is_classes(label):
            return None
        classes = sorted(set().union(*(tally.columns[s][label].counts for s in SPLITS)))
        index = {value: i for i, value in enumerate(classes)}
        by_split = {}
        for split in SPLITS:
            counts = tally.columns[split][label].counts
            by_split[split] = Counted(np.array([index[v] for v in sorted(counts)], np.int64),
                                      np.array([counts[v] for v in sorted(counts)], np.int64))
        return (by_split, split_summary(tally, counted.split, self.split,
                                        counted.by_split.sum(axis=0)),
                [str(c) for c in classes])

    def path_problems(self, folder: Path) -> Found:
        """Each path field names a file, a folder of the source's files, or a glob that
        matches some."""
        from cbrun.data.shards import ShardProblem, is_glob, list_files

        found: Found = []
        for field, value in self.paths().items():
            if not is_glob(value) and not (folder / value).exists():
                found.append((("data", field), missing_path(field, value, folder,
                                                            self.file_glob)))
                continue
            try:
                list_files(value, folder, self.source)
            except ShardProblem as exc:
                found.append((("data", field), f"{field} {exc}"))
        return found

    def preflight(self, folder: Path, *, seed: int) -> Found:
        found = self.path_problems(folder) or self.column_problems(folder)
        if found:
            return found
        # Only now the data itself: missing values, unseen classes.
        from cbrun.data.tables import TableProblem, encode_splits

        try:
            if self.stream_decision(folder).stream:
                from cbrun.data.streamcheck import stream_problems

                return stream_problems(self, folder, seed)
            encode_splits(self, folder, seed)
        except TableProblem as exc:
            found.append((exc.loc, str(exc)))
        except ValueError as exc:
            found.append((("data", "path"), first_line(exc)))
        return found

    def column_problems(self, folder: Path) -> Found:
        """The files' headers against the columns the config names (labels, features,
        text), from the headers alone; the files exist. Every shard of a folder or glob is
        read, and one that differs from the first is named."""
        found: Found = []
        for field, value in self.paths().items():
            try:
                shards = self.open_table(folder, value)
            except (ValueError, OSError) as exc:
                text = first_line(exc)
                found.append((("data", field), text if "table" in text or "column" in text
                              else f"{value} is not a readable {self.source} table: {text}"))
                continue
            name = value if len(shards.files) == 1 else shards.shown
            found += self._check_columns(field, name, shards.columns)
        return found

    def _check_columns(self, field: str, name: str, columns: list[str]) -> Found:
        found: Found = []
        wanted = [("label", c) for c in self.label_columns()]
        groups = self.feature_groups(columns)
        for group in (groups.values() if isinstance(groups, dict) else [groups]):
            wanted += [("features", c) for c in group]
        for key, column in wanted:
            if column not in columns:
                found.append((("data", key), (f"{name} has no column {column!r}"
                                             f"{did_you_mean(column, columns)}; its columns: "
                                             f"{', '.join(columns)}")))
        if not found and not groups:
            found.append((("data", "features"), (f"{name} has no column left for the inputs "
                                                "besides the labels")))
        if not found:
            found += self._text_problems(groups)
        return found

    def _text_problems(self, groups) -> Found:
        """Text stays strings, so it cannot share an input with numbers: each input is all
        text or no text."""
        used = [c for g in (groups.values() if isinstance(groups, dict) else [groups])
                for c in g]
        found: Found = []
        for i, column in enumerate(self.text):
            if column not in used:
                found.append((("data", "text", i), (f"{column!r} is not among the feature "
                                                   f"columns ({', '.join(used)})")))
        named = groups.items() if isinstance(groups, dict) else [(None, groups)]
        for key, columns in named:
            texts = [c for c in columns if c in self.text]
            if texts and len(texts) != len(columns):
                where = ("data", "features", key) if key else ("data", "text")
                found.append((where, (f"text column{'s' if len(texts) > 1 else ''} "
                                      f"{', '.join(texts)} and number columns "
                                      f"{', '.join(c for c in columns if c not in texts)} "
                                      "cannot form one input; give the text its own input: "
                                      f"features: {{text: [{', '.join(texts)}], numbers: "
                                      "[...]}}")))
        return found


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
