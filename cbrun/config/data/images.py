"""`source: images`: a folder with one sub-folder per class, the layout of Keras's
`image_dataset_from_directory` and of Ultralytics classification.

The preflight lists the folders and reads each file's first and last bytes: a file that is
not a PNG/JPEG/GIF/BMP, or one cut short, is named before TensorFlow is imported."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from cbrun.config.data.common import FileSource, Found

EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
_CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}


def image_files(folder: Path) -> list[Path]:
    """A class folder's images, subfolders included (as Keras's image_dataset_from_directory
    reads them), sorted by path; hidden files and folders (.DS_Store, macOS's ._name
    copies) are not images. `cbrun predict` reads a folder of images by the same rule."""
    found = []
    for path in folder.rglob("*"):
        parts = path.relative_to(folder).parts
        if any(part.startswith(".") for part in parts):
            continue
        if path.suffix.lower() in EXTENSIONS and path.is_file():
            found.append(path)
    return sorted(found)


def list_images(folder: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """(class names, [(file, class index)]) in a stable order: classes sorted, files sorted
    by path within each class."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir()
                     and not p.name.startswith("."))
    files = [(f, i) for i, name in enumerate(classes) for f in image_files(folder / name)]
    return classes, files


def image_problem(path: Path) -> str | None:
    """Why `path` is not a whole image file, from its first and last bytes, or None."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        handle.seek(max(0, size - 12))
        tail = handle.read()
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return None if tail[4:8] == b"IEND" else "a PNG cut short (no IEND chunk at its end)"
    if head.startswith(b"\xff\xd8"):
        return None if tail.rstrip(b"\x00").endswith(b"\xff\xd9") else \
            "a JPEG cut short (no end-of-image marker)"
    if head.startswith((b"GIF87a", b"GIF89a", b"BM")):
        return None
    return "not a PNG, JPEG, GIF or BMP image"


def split_files(paths: list, labels: list[int], cfg, seed: int
                ) -> tuple[dict[str, tuple[list, list]], dict]:
    """({split: (files, class ids)}, the split's summary): validation and test drawn as
    `cfg.split` says, always per class (a folder's classes are its labels). `tail` takes
    the last files of each class by name, as cbrun did before `split` existed."""
    import numpy as np

    from cbrun.data.splits import draw

    val, test = cfg.validation_split, cfg.test_split
    if cfg.split == "tail":
        rows = {"train": [], "validation": [], "test": []}
        for cls in sorted(set(labels)):
            mine = np.flatnonzero(np.asarray(labels) == cls)
            cut = draw(len(mine), val, test, "tail", seed)
            for name, found in rows.items():
                found.extend(mine[getattr(cut, name)])
        method = "tail"
    else:
        cut = draw(len(paths), val, test, "stratified" if cfg.split == "auto" else cfg.split,
                   seed, labels=np.asarray(labels, dtype=np.int64))
        rows = {name: list(getattr(cut, name)) for name in ("train", "validation", "test")}
        method = cut.method
    summary = {"method": method, "sorted_by_label": False,
               "rows": {name: len(found) for name, found in rows.items()}}
    return {name: ([paths[i] for i in sorted(found)], [labels[i] for i in sorted(found)])
            for name, found in rows.items()}, summary


class ImagesData(FileSource):
    """Images in class folders, streamed from disk: decoded in parallel, resized to
    `image_size`, batched and prefetched by tf.data. Class names are saved in the run
    directory (`data/classes.json`)."""

    source: Literal["images"] = Field(description="A folder of class folders of images.")
    path: str = Field(description="The folder of class folders (e.g. train/cat/1.png), "
                                  "relative to the config file.")
    validation_path: str | None = Field(
        None, description="A folder with the same class folders for validation. Excludes "
                          "validation_split (which holds out the last files of each class).")
    test_path: str | None = Field(
        None, description="A folder with the same class folders, evaluated once after "
                          "training. Excludes test_split.")
    image_size: list[int] = Field(
        description="[height, width] every image is resized to (bilinear), e.g. [64, 64].")
    color_mode: Literal["grayscale", "rgb", "rgba"] = Field(
        "rgb", description="Channels of the decoded images: 1, 3 or 4. Defaults to rgb.")
    cache: Literal["memory", "disk"] | None = Field(
        None, description="`memory`: decode every image once and keep them in RAM; `disk`: "
                          "decode every image once into raw pixel files in the run directory "
                          "(runs/<id>/cache/), read back each epoch without decoding. Defaults "
                          "to none: images are decoded from their files every epoch.")
    file_glob = None

    @field_validator("image_size")
    @classmethod
    def _size(cls, value: list[int]) -> list[int]:
        if len(value) != 2 or any(d <= 0 for d in value):
            raise ValueError(f"must be [height, width], two positive integers; got {value}")
        return value

    @property
    def channels(self) -> int:
        return _CHANNELS[self.color_mode]

    @property
    def sample_shape(self) -> list[int]:
        return [*self.image_size, self.channels]

    def sample_shapes(self, folder: Path):
        return {None: self.sample_shape}

    def split_labels(self, folder: Path, seed: int):
        if not (self.validation_split or self.test_split):
            return None
        classes, files = list_images(folder / self.path)
        parts, summary = split_files([f for f, _ in files], [i for _, i in files], self, seed)
        import numpy as np

        return ({name: np.array([classes[i] for i in ids], dtype=object)
                 for name, (_, ids) in parts.items()}, summary)

    def preflight(self, folder: Path, *, seed: int) -> Found:
        found = super().preflight(folder, seed=seed)
        if found:
            return found
        classes = None
        for field, value in self.paths().items():
            loc = ("data", field)
            names, files = list_images(folder / value)
            if not names:
                found.append((loc, (f"{value} has no class folders; put each class's images "
                                   f"in a folder of its own ({value}/cat/1.png, ...)")))
                continue
            empty = sorted(set(names) - {names[i] for _, i in files})
            if empty:
                found.append((loc, (f"class folder{'s' if len(empty) > 1 else ''} "
                                   f"{', '.join(empty)} in {value} hold{'' if len(empty) > 1 else 's'}"
                                   f" no images ({', '.join(EXTENSIONS)})")))
            if classes is None:
                classes = names
            elif names != classes:
                found.append((loc, (f"{value} has the classes {names}, but {self.path} has "
                                   f"{classes}; the class folders must match")))
            for file, _ in files:
                problem = image_problem(file)
                if problem:
                    found.append((loc, f"{file} is {problem}; remove or replace it"))
        return found
