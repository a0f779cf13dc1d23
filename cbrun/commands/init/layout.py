"""Where the training, validation and test data are, in the layouts people use: a folder
with train/ and val/ (or valid/, validation/) and test/ inside; a training folder or file
given with its val and test siblings beside it (data/train, data/val; train.csv,
val.csv)."""

from __future__ import annotations

from pathlib import Path

TRAIN = ("train", "training")
SPLITS = {"validation_path": ("val", "valid", "validation", "dev"), "test_path": ("test",)}


def _find(folder: Path, names: tuple[str, ...], suffix: str, folders: bool) -> Path | None:
    for name in names:
        candidate = folder / f"{name}{suffix}"
        if candidate.is_dir() if folders else candidate.is_file():
            return candidate
    return None


def siblings(path: Path, folders: bool) -> dict[str, Path]:
    """{field: path}: `path` (or its train/ folder) and the validation and test data found
    beside it."""
    if folders and (inner := _find(path, TRAIN, "", True)) is not None:
        found = {"path": inner}
        for field, names in SPLITS.items():
            if (hit := _find(path, names, "", True)) is not None:
                found[field] = hit
        return found
    found = {"path": path}
    stem = path.name if folders else path.stem
    if stem.lower() in TRAIN:
        suffix = "" if folders else path.suffix
        for field, names in SPLITS.items():
            if (hit := _find(path.parent, names, suffix, folders)) is not None:
                found[field] = hit
    return found
