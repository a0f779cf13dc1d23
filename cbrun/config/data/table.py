"""What `source: csv` and `source: parquet` share: a target column (or several) and the
feature columns, every other column by default.

The preflight reads the files with pyarrow (no TensorFlow): columns that do not exist,
missing values and label classes the training file never shows are reported at the line
of the config, before a run directory exists."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from cbrun.config.data.common import FileSource, Found
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
        groups = self.feature_groups(self.schema_columns(folder / self.path))
        if isinstance(groups, dict):
            return {key: [len(columns)] for key, columns in groups.items()}
        return {None: [len(groups)]}

    def read(self, path: Path, columns: list[str] | None = None):
        """The table at `path` (only `columns`, when given), or ValueError."""
        raise NotImplementedError

    def file_labels(self, folder: Path):
        labels = self.label_columns()
        if len(labels) != 1:
            return None
        try:
            table = self.read(folder / self.path, labels)
        except (ValueError, OSError, KeyError):
            return None  # the preflight says what is wrong with the file
        return table.column(labels[0]).to_numpy(zero_copy_only=False)

    def schema_columns(self, path: Path) -> list[str]:
        raise NotImplementedError

    def preflight(self, folder: Path, *, seed: int) -> Found:
        found = super().preflight(folder, seed=seed) or self.column_problems(folder)
        if found:
            return found
        # Only now the data itself: missing values, unseen classes.
        from cbrun.data.tables import TableProblem, encode_splits

        try:
            encode_splits(self, folder, seed)
        except TableProblem as exc:
            found.append((exc.loc, str(exc)))
        return found

    def column_problems(self, folder: Path) -> Found:
        """The files' headers against the columns the config names (labels, features,
        text), from the headers alone; the files exist."""
        found: Found = []
        for field, value in self.paths().items():
            try:
                columns = self.schema_columns(folder / value)
            except (ValueError, OSError) as exc:
                found.append((("data", field), (f"{value} is not a readable "
                                               f"{self.source} table: {first_line(exc)}")))
                continue
            twice = next((c for c in columns if columns.count(c) > 1), None)
            if twice is not None:  # pyarrow cannot tell them apart by name
                places = ", ".join(str(i + 1) for i, c in enumerate(columns) if c == twice)
                found.append((("data", field), (f"{value} has {columns.count(twice)} columns "
                                               f"named {twice!r} (columns {places}); give "
                                               "each column a name of its own")))
                continue
            found += self._check_columns(field, value, columns)
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
