"""`source: images`: a folder with one sub-folder per class, the layout of Keras's
`image_dataset_from_directory` and of Ultralytics classification.

The preflight lists the folders and reads each file's header and last bytes (a PNG whole,
checking its CRCs): a file that is not a PNG/JPEG/GIF/BMP, one cut short or a PNG damaged
inside is named before TensorFlow is imported."""

from __future__ import annotations

import zlib
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from cbrun.config.data.common import FileSource, Found

EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
_CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}


def image_files(folder: Path) -> list[Path]:
    """A folder's images, subfolders included (as Keras's image_dataset_from_directory
    reads a class folder), sorted by path; hidden files and folders (.DS_Store, macOS's
    ._name copies) are not images. Training, the resume's fingerprint and predict on a
    folder all list with it."""
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
    """Why `path` is not a whole image file, or None. A PNG is read whole and each chunk's
    CRC checked (a damaged byte anywhere in its pixels fails TensorFlow's decoder, which
    checks them too); a JPEG, GIF or BMP is judged by its header and its last bytes."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(54)
        if head.startswith(_PNG):
            handle.seek(len(_PNG))
            return _png_problem(handle)
        handle.seek(max(0, size - 12))
        tail = handle.read()
    if head.startswith(b"\xff\xd8"):
        return None if tail.rstrip(b"\x00").endswith(b"\xff\xd9") else \
            "a JPEG cut short (no end-of-image marker)"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return None
    if head.startswith(b"BM"):
        return _bmp_problem(head, size)
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


_PNG = b"\x89PNG\r\n\x1a\n"


def _png_problem(handle) -> str | None:
    """Walks the chunks after the signature: each one's length, type and CRC."""
    offset, first = len(_PNG), True
    while True:
        header = handle.read(8)
        if len(header) < 8:
            return "a PNG cut short (no IEND chunk at its end)"
        length, kind = int.from_bytes(header[:4], "big"), header[4:]
        if not kind.isalpha() or (first and kind != b"IHDR"):
            return f"a damaged PNG (no chunk header at byte {offset})"
        body = handle.read(length + 4)
        if len(body) < length + 4:
            return "a PNG cut short (no IEND chunk at its end)"
        if zlib.crc32(kind + body[:length]) != int.from_bytes(body[length:], "big"):
            return (f"a damaged PNG (its {kind.decode()} chunk at byte {offset} fails its "
                    "CRC check)")
        if kind == b"IEND":
            return None
        offset, first = offset + 12 + length, False


def _bmp_problem(head: bytes, size: int) -> str | None:
    """An uncompressed BMP holds at least its pixel rows (each padded to 4 bytes) after the
    offset its header gives."""
    if len(head) < 34 or int.from_bytes(head[14:18], "little") < 40:
        return None  # an old OS/2 header, or too short to say: the decoder judges
    offset = int.from_bytes(head[10:14], "little")
    width = int.from_bytes(head[18:22], "little", signed=True)
    height = int.from_bytes(head[22:26], "little", signed=True)
    bits, compression = int.from_bytes(head[28:30], "little"), int.from_bytes(head[30:34], "little")
    if compression != 0:
        return None
    needed = offset + (bits * abs(width) + 31) // 32 * 4 * abs(height)
    return None if size >= needed else \
        f"a BMP cut short ({size} bytes, where its header needs {needed})"


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

    def folder_files(self, folder: Path) -> list[Path]:
        """The images the loader lists (hidden files and other extensions skipped)."""
        return [file for file, _ in list_images(folder)[1]]

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
            if field == "path":
                found += [(loc, message)
                          for message in self._split_problems(value, names, files, seed)]
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

    def _split_problems(self, value: str, names: list[str], files, seed: int) -> list[str]:
        """Classes that validation_split / test_split, drawn as the run draws them, leave
        with no training images."""
        if not (self.validation_split or self.test_split):
            return []
        counts = Counter(index for _, index in files)
        parts, _ = split_files([f for f, _ in files], [i for _, i in files], self, seed)
        trained = Counter(parts["train"][1])
        few = [f"{name} ({counts[i]} image{'s' * (counts[i] > 1)})"
               for i, name in enumerate(names) if counts[i] and not trained[i]]
        if not few:
            return []
        splits = " and ".join(f"{key} {getattr(self, key)}" for key in
                              ("validation_split", "test_split") if getattr(self, key))
        return [(f"{splits} leave{'s' * (' and ' not in splits)} class{'es' * (len(few) > 1)} "
                 f"{', '.join(few)} of {value} no training images; add images to "
                 f"{'them' if len(few) > 1 else 'it'} or lower the split")]
