"""`cbrun data check`: from what it is given (a config, a table, an .npz, a folder of
class folders) to one report, without TensorFlow.

A config's data is read as its run reads it, and its held-out rows are drawn by the
functions the run calls (cbrun/data/splits.draw through cbrun.data.tables.label_values,
cbrun/config/data/images.split_files), with the config's seed: the splits shown are the
rows the run will train and validate on. A data file alone has no splits, unless
--validation-split asks for a preview (drawn the same way, with --seed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cbrun.data.report import drawn_split
from cbrun.errors import ConfigError, UsageError

TABLES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
READABLE = ("csv", "parquet", "npz", "images", "digits")
DEFAULT_SEED = 42  # a config's default seed (config/root.py)


@dataclass
class Preview:
    """A data file's stand-in for a config's `data:` section: what draws the held-out rows
    (the fields split_warnings and draw read) and which column is the label."""

    label: str | None = None
    validation_split: float = 0.0
    test_split: float = 0.0
    split: str = "auto"
    shuffle: bool = True
    delimiter: str = ","
    text: list[str] = field(default_factory=list)

    def label_columns(self) -> list[str]:
        return [self.label] if self.label else []


# ---------------------------------------------------------------- entry points

def check_config(path: Path, overrides: tuple[str, ...] = ()) -> dict:
    """The report on the data a config declares, or ConfigError (as `validate` words it)."""
    from cbrun.config.load import load_config

    loaded = load_config(path, overrides, check_data_files=False)
    config, data, folder = loaded.config, loaded.config.data, path.parent
    if data.source not in READABLE:
        raise UsageError(f"data check reads tables, npz archives, image folders and the "
                         f"digits without TensorFlow; source: {data.source} is loaded by "
                         f"{'Keras' if data.source == 'keras' else 'your function'} when a "
                         "run starts, so there is nothing to read before it")
    # Files that are missing, and tables without the columns the config names, leave
    # nothing to report on: they are config errors, at their line. What is wrong inside
    # the files (missing values, corrupt images) is the report's to say.
    found = data.path_problems(folder)
    if not found and data.source in ("csv", "parquet"):
        found = data.column_problems(folder)
    elif not found and data.source == "npz":
        found = data.preflight(folder, seed=config.seed)
    if found:
        raise ConfigError([loaded.positions.problem(loc, message) for loc, message in found])
    files = {name: (folder / value, value) for name, value in data.paths().items()}
    report = _dispatch(data.source, files, data, config.seed, data)
    return {"target": str(path), "config": str(path), "source": data.source,
            "files": {name: shown for name, (_, shown) in files.items()},
            "seed": config.seed, **report}


def check_path(path: Path, preview: Preview, seed: int) -> dict:
    """The report on a data file or folder given directly."""
    if path.is_dir():
        from cbrun.data.shards import folder_source

        source = folder_source(path) or "images"  # a folder of shards is one table
    elif path.suffix.lower() in TABLES:
        source = TABLES[path.suffix.lower()]
    elif path.suffix.lower() == ".npz":
        source = "npz"
    else:
        raise UsageError(f"{path} is not a config (.yaml), a table (.csv, .parquet), an .npz "
                         "or a folder of class folders of images")
    from cbrun.data.shards import is_glob

    if not path.exists() and not (is_glob(str(path)) and source in ("csv", "parquet")):
        raise UsageError(f"{path} does not exist")
    if source != "csv" and preview.delimiter != ",":
        raise UsageError("--delimiter is for a CSV table")
    if source == "images" and preview.label is not None:
        raise UsageError("--label is for a table or an .npz; the classes of images are "
                         "their folders")
    report = _dispatch(source, {"path": (path, str(path))}, preview, seed, None)
    return {"target": str(path), "config": None, "source": source, "files": {"path": str(path)},
            "seed": seed if preview.validation_split else None, **report}


def _dispatch(source: str, files: dict[str, tuple[Path, str]], spec, seed: int,
              data) -> dict:
    if source == "images":
        from cbrun.data.images_report import images_report

        report = images_report(files, spec, seed)
        if report["split"]:
            report["split"] = drawn_split(report["split"], spec)
    elif source in ("csv", "parquet"):
        from cbrun.data.table_check import table_check

        report = table_check(source, files, spec, seed, data)
    else:
        from cbrun.data.arrays_report import arrays_check

        report = arrays_check(source, files, spec, seed, data)
    report["findings"] = ordered(report["findings"])
    return report


# Findings in this order: what a run refuses or cannot use, then how the splits compare.
ORDER = ("delimiter", "kind", "missing", "nan", "constant", "identifier", "corrupt", "classes",
         "sizes", "split", "duplicates", "leakage", "conflict")


def ordered(findings: list[dict]) -> list[dict]:
    return sorted(findings, key=lambda f: ORDER.index(f["kind"]) if f["kind"] in ORDER
                  else len(ORDER))
