"""What every data source shares: batching, the data order, and the held-out splits.

Each source is one module next to this one, a subclass of `DataSource` with
`source: Literal[...]` as its tag. `preflight(folder)` checks what can be checked without
TensorFlow (files exist, headers, shapes) and runs before any run directory exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from cbrun.config.base import StrictModel
from cbrun.suggest import did_you_mean

Found = list[tuple[tuple[Any, ...], str]]  # (location in the config, message)

Fraction = Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)]
# Named arrays for several model inputs or outputs: {input name: array or column name}.
Names = str | dict[str, str]


class DataSource(StrictModel):
    """The keys every source takes. Strict: `batch_size: true` or `'3'` is an error."""

    model_config = ConfigDict(strict=True)
    # The extension offered when a path does not exist ("*.npz"), or None for folders.
    file_glob: ClassVar[str | None] = None

    batch_size: int = Field(32, gt=0, description="Samples per batch. Defaults to 32.")
    shuffle: bool = Field(
        True, description="Shuffle the training samples every epoch; epoch k's order is a "
                          "pure function of (seed, k), which is what makes resume exact. "
                          "Defaults to true.")
    validation_split: Fraction = Field(
        0.0, description="Fraction of the training samples held out for validation, drawn "
                         "as `split` says. Defaults to 0.0.")
    test_split: Fraction = Field(
        0.0, description="Fraction of the training samples held out as the test split, "
                         "evaluated once after training; drawn as `split` says, before the "
                         "validation part. Defaults to 0.0.")
    split: Literal["auto", "stratified", "random", "tail"] = Field(
        "auto", description="How validation_split and test_split choose their rows: "
                            "`stratified` (every class keeps its share in every split, rows "
                            "drawn from the seed), `random` (rows drawn from the seed), `tail` "
                            "(the last rows of the file, as Keras's validation_split; a file "
                            "sorted by its label then validates on one class). Defaults to "
                            "auto: stratified for a target of classes, random otherwise.")

    fraction: float = Field(
        1.0, gt=0.0, le=1.0, allow_inf_nan=False,
        description="Train, validate and test on this share of each split's rows, drawn "
                    "from the seed (every class keeps its share), e.g. 0.1 for a quick "
                    "look at a big table. Defaults to 1.0: all of them.")

    @model_validator(mode="after")
    def _fractions_fit(self) -> DataSource:
        if self.validation_split + self.test_split >= 1.0:
            raise ValueError("validation_split + test_split must leave training samples "
                             f"(given {self.validation_split} + {self.test_split})")
        for split in ("validation", "test"):
            if getattr(self, f"{split}_split", 0) and getattr(self, f"{split}_path", None):
                raise ValueError(f"give either {split}_split or {split}_path, not both")
        return self

    @property
    def has_validation(self) -> bool:
        return bool(self.validation_split) or bool(getattr(self, "validation_path", None))

    @property
    def has_test(self) -> bool:
        return bool(self.test_split) or bool(getattr(self, "test_path", None))

    def paths(self) -> dict[str, str]:
        """{field: path} of the files this source reads, relative to the config's folder."""
        return {}

    def named_inputs(self) -> tuple[str, list[str]] | None:
        """(the field that names them, the input names) when the data feeds named inputs;
        None for one unnamed input or when the names are known only after loading."""
        return None

    def named_outputs(self) -> tuple[str, list[str]] | None:
        """The same for the targets: (field, output names) or None."""
        return None

    def sample_shapes(self, folder: Path) -> dict[str | None, list[int]] | None:
        """{input name (None for a single input): shape of one sample}, as far as it is
        known without TensorFlow and without reading the samples; None when not known."""
        return None

    def file_labels(self, folder: Path):
        """The targets of the training file's rows, in file order, where they can be read
        without TensorFlow and the source draws held-out rows from them; None otherwise
        (several targets, a loader, a dataset)."""

    def split_labels(self, folder: Path, seed: int) -> tuple[dict[str, Any], dict] | None:
        """({split: targets of its rows}, how they were drawn: `Cut.summary()`) as the run
        will draw them, for the warnings of cbrun/data/balance.py; None when not known
        before TensorFlow or when no rows are held out."""
        from cbrun.data.splits import draw

        labels = self.file_labels(folder)
        if labels is None or not (self.validation_split or self.test_split):
            return None
        cut = draw(len(labels), self.validation_split, self.test_split, self.split, seed,
                   labels=labels)
        return ({"train": labels[cut.train], "validation": labels[cut.validation],
                 "test": labels[cut.test]}, cut.summary())

    def path_problems(self, folder: Path) -> Found:
        """Every path must exist, as the file or folder the source reads."""
        return [(("data", field), message) for field, value in self.paths().items()
                if (message := missing_path(field, value, folder, self.file_glob))]

    def preflight(self, folder: Path, *, seed: int) -> Found:
        """Problems found without TensorFlow: every path must exist. Sources add checks of
        their headers or shapes."""
        return self.path_problems(folder)


class FileSource(DataSource):
    """A source read from files: the training file and, optionally, separate validation
    and test files of the same kind."""

    path: str = Field(description="The training data, relative to the config file.")
    validation_path: str | None = Field(
        None, description="Separate validation data of the same kind. Excludes "
                          "validation_split.")
    test_path: str | None = Field(
        None, description="Separate test data of the same kind, evaluated once after "
                          "training. Excludes test_split.")

    def paths(self) -> dict[str, str]:
        return {field: value for field in ("path", "validation_path", "test_path")
                if (value := getattr(self, field))}

    def folder_files(self, folder: Path) -> list[Path]:
        """The files training reads from a folder this source names, in a stable order
        (what the resume's fingerprint hashes): every file, unless the source skips some."""
        return sorted(p for p in folder.rglob("*") if p.is_file())


def missing_path(field: str, value: str, folder: Path, glob: str | None) -> str | None:
    """Why `value` (relative to `folder`) is not the file (glob given) or folder it must be,
    or None when it is."""
    full = (folder / value).absolute()
    wants_file = glob is not None
    if (full.is_file() if wants_file else full.is_dir()):
        return None
    if wants_file and full.is_dir():
        return f"{field} {value!r} is a folder ({full}); give the {glob[1:]} file in it"
    if not wants_file and full.is_file():
        return f"{field} {value!r} is a file ({full}); give the folder of class folders"
    near = []
    if full.parent.is_dir():
        near = [str(Path(value).parent / hit.name) for hit in full.parent.glob(glob or "*")
                if (hit.is_file() if wants_file else hit.is_dir())]
    return (f"{field} {value!r} does not exist{did_you_mean(value, near)}: data paths are "
            f"relative to the folder of the config file, so cbrun looked for {full}")


def names_of(value: Names) -> list[str]:
    return [value] if isinstance(value, str) else list(value.values())
