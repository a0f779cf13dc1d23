"""`cbrun init DATA`: a commented starter config for a table, an image folder or an npz.

The file validates and trains as it is; TensorFlow is not imported to write it."""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

import click
import numpy as np

from cbrun.errors import UsageError

MAX_CLASSES = 50  # an integer label with more distinct values is taken as a number
LABEL_NAMES = ("label", "labels", "target", "class", "y", "species", "category")
Y_NAMES = ("y", "y_train", "labels", "label", "targets", "target", "classes")


def _q(name: str) -> str:
    """A column name as YAML reads it back: bare only where plain and YAML reads the bare word
    as this very string (not `yes` -> true, `null` -> None, `1.5` -> a float)."""
    import yaml

    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name)
    return name if plain and yaml.safe_load(name) == name else json.dumps(name)


def _q_path(path: str) -> str:
    """A path as YAML reads it back (`2024` or `data: x` would not be a string bare)."""
    import yaml

    plain = re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_./-]*", path)
    return path if plain and yaml.safe_load(path) == path else json.dumps(path)


def _head(section: str, lines: list[str]) -> str:
    return "\n".join([f"{section}:", *[f"  {line}" for line in lines]])


def _callbacks() -> str:
    return """\
callbacks:
  # Stop when val_loss has not improved for 5 epochs, and keep the best weights.
  - {type: EarlyStopping, monitor: val_loss, patience: 5, restore_best_weights: true}
  - type: ModelCheckpoint
    filepath: checkpoints/ep{epoch:03d}-val_loss{val_loss:.3f}.keras
    monitor: val_loss
    save_best_only: true
  - {type: CSVLogger, filename: log.csv}
  - {type: ReduceLROnPlateau, monitor: val_loss, factor: 0.5, patience: 2}
"""


def _classification(units: int, what: str) -> tuple[list[str], str]:
    last = f"- {{type: Dense, units: {units}, activation: softmax}}   # one output per {what}"
    return [last], ("compile:\n  optimizer: {type: Adam, learning_rate: 0.001}\n"
                    "  loss: sparse_categorical_crossentropy\n  metrics: [accuracy]")


def _regression(units: int) -> tuple[list[str], str]:
    what = "one number out" if units == 1 else f"{units} numbers out"
    return ([f"- {{type: Dense, units: {units}}}   # {what}: a regression"],
            ("compile:\n  optimizer: {type: Adam, learning_rate: 0.001}\n  loss: mse\n"
             "  metrics: [mae]"))


def _image_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from a PNG or JPEG header, without an image library."""
    with path.open("rb") as handle:
        data = handle.read(65536)
    if data.startswith(b"\x89PNG") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return height, width
    i = 2
    while data.startswith(b"\xff\xd8") and i + 9 < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return height, width
        i += 2 + length
    return None


_SPLITS = {"validation_path": ("val", "valid", "validation"), "test_path": ("test",)}


def _split_layout(path: Path) -> dict[str, str] | None:
    """{field: sub-folder} for the Ultralytics/Keras layout ds/train|val|test/<class>/, or None
    for a folder of class folders."""
    if not (path / "train").is_dir():
        return None
    found = {"path": "train"}
    for field, names in _SPLITS.items():
        sub = next((n for n in names if (path / n).is_dir()), None)
        if sub:
            found[field] = sub
    return found if len(found) > 1 else None


def _images(path: Path, rel: str) -> tuple[str, str, str]:
    from cbrun.config.data.images import list_images

    layout = _split_layout(path) or {"path": "."}
    classes, files = list_images(path / layout["path"])
    if not files:
        raise UsageError(f"{path} has no class folders with images (e.g. {path}/cat/1.png)")
    size = _image_size(files[0][0]) or (64, 64)
    side = [min(d, 128) for d in size]
    head, compile_ = _classification(len(classes), f"class ({', '.join(classes[:6])}"
                                                   f"{', ...' if len(classes) > 6 else ''})")
    paths = []
    for field, sub in layout.items():
        count = len(list_images(path / sub)[1])
        where = rel if sub == "." else f"{rel}/{sub}"
        what = f"{len(classes)} class folders, {count} images" if field == "path" else \
            f"{count} images"
        paths.append(f"{field}: {_q_path(where)}            # {what}")
    split = [] if "validation_path" in layout else \
        ["validation_split: 0.2    # the last 20% of each class's files"]
    data = _head("data", [
        "source: images",
        *paths,
        f"image_size: [{side[0]}, {side[1]}]   # every image is resized to this",
        "color_mode: rgb",
        *split,
        "batch_size: 32",
    ])
    model = _head("model", [
        f"input_shape: [{side[0]}, {side[1]}, 3]",
        "layers:",
        "  # Augmentation goes here, in the model: e.g. {type: RandomFlip, mode: horizontal}",
        "  - {type: Rescaling, scale: 0.00392156862745098}   # 0..255 -> 0..1",
        "  - {type: Conv2D, filters: 16, kernel_size: 3, activation: relu}",
        "  - {type: MaxPooling2D}",
        "  - {type: Flatten}",
        *[f"  {line}" for line in head],
    ])
    return data, model, compile_


def _pick_y(headers: dict, x: str) -> str:
    """The targets: among the arrays other than x, a 1-D integer array named like a label
    first, then any named like one, then any 1-D integer array, then the first."""
    others = [n for n in headers if n != x]
    named = [n for n in others if n.lower() in Y_NAMES]
    ids = [n for n in others if len(headers[n][0]) == 1 and headers[n][1].kind in "iub"]
    return next(iter([n for n in named if n in ids] + named + ids + others))


def _npz(path: Path, rel: str) -> tuple[str, str, str]:
    from cbrun.config.data.npz import npz_headers

    try:
        headers = npz_headers(path)
    except (ValueError, OSError) as exc:
        raise UsageError(f"{path} {exc}") from None
    names = list(headers)
    if len(names) < 2:
        raise UsageError(f"{path.name} needs an array of inputs and one of targets; it has: "
                         f"{', '.join(names) or 'none'}")
    x = next((n for n in ("x", "x_train", "inputs", "features") if n in headers),
             next((n for n in names if n.lower() not in Y_NAMES), names[0]))
    y = _pick_y(headers, x)
    x_shape, y_shape = headers[x][0], headers[y][0]
    with np.load(path, allow_pickle=False) as archive:
        labels = archive[y]
    if labels.dtype.kind in "iub" and labels.ndim == 1 and labels.size and labels.min() >= 0 \
            and labels.max() < 1000:
        head, compile_ = _classification(int(labels.max()) + 1, "class id")
    else:
        head, compile_ = _regression(int(np.prod(y_shape[1:], dtype=np.int64)))
    shapes = ", ".join(f"{k} {list(v[0])}" for k, v in headers.items())
    data = _head("data", [
        "source: npz",
        f"path: {_q_path(rel)}            # arrays: {shapes}",
        f"x: {_q(x)}",
        f"y: {_q(y)}",
        "validation_split: 0.2    # the last 20% of the samples",
        "batch_size: 32",
    ])
    model = _head("model", [
        f"input_shape: {list(x_shape[1:]) or [1]}",
        "layers:",
        *(["  - {type: Flatten}"] if len(x_shape) > 2 else []),
        "  - {type: Dense, units: 64, activation: relu}",
        *[f"  {line}" for line in head],
        *([f"  - {{type: Reshape, target_shape: {list(y_shape[1:])}}}   # to the shape of y"]
          if len(y_shape) > 2 else []),
    ])
    return data, model, compile_


def _check(output: Path) -> None:
    """The checks of `cbrun validate` (no TensorFlow) on the file just written: a config
    that init writes but that fails them is not left to fail at `cbrun train`."""
    from cbrun.config.load import load_config
    from cbrun.errors import ConfigError

    try:
        load_config(output, (), check_data_files=True)
    except ConfigError as exc:
        problems = "\n".join(p.render() for p in exc.problems)
        raise UsageError(f"wrote {output}, but it does not validate because of the data:\n"
                         f"{problems}\nfix the data (or edit {output}), then check it with "
                         f"`cbrun validate {output}`") from None


@click.command()
@click.argument("data_path", metavar="DATA", type=click.Path(path_type=Path, exists=True))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Where to write the config. Defaults to DATA's name with .yaml, next to it.")
@click.option("--label", help="The target column of a table (default: a column named label, "
                              "target, class... or the last one).")
@click.option("--delimiter", help="The character between the fields of a CSV table, e.g. ';' "
                                  "(default ','); written into the config.")
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
def init(data_path: Path, output: Path | None, label: str | None, delimiter: str | None,
         force: bool) -> int:
    """Write a commented starter config for DATA: a CSV or Parquet table, a folder of class
    folders of images (or of train/val/test folders of them), or an .npz. It validates and
    trains as it is; init runs `cbrun validate`'s checks on it and exits 2 when the data
    fails them (the file is kept, with the problems printed)."""
    stem = data_path.name if data_path.is_dir() else data_path.stem
    output = output or data_path.parent / f"{stem}.yaml"
    if output.exists() and not force:
        raise UsageError(f"{output} exists; choose another --output, or --force")
    if delimiter is not None:
        delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)
        if len(delimiter) != 1:
            raise UsageError(f"--delimiter must be one character (e.g. ';' or tab); "
                             f"given {delimiter!r}")
    rel = Path(os.path.relpath(data_path.absolute(), output.absolute().parent)).as_posix()
    suffix = data_path.suffix.lower()
    if delimiter is not None and suffix != ".csv":
        raise UsageError(f"--delimiter is for a .csv table; {data_path} is not one")
    if data_path.is_dir():
        data, model, compile_ = _images(data_path, rel)
    elif suffix in (".csv", ".parquet"):
        from cbrun.commands.init_table import table

        data, model, compile_ = table(data_path, rel, label, delimiter)
    elif suffix == ".npz":
        data, model, compile_ = _npz(data_path, rel)
    else:
        raise UsageError(f"{data_path} is not a .csv, .parquet, .npz or a folder of class "
                         "folders of images")
    # The run's name is the config's: `--output kind.yaml` names its runs `kind`.
    name = "".join(c if c.isalnum() or c in "_.-" else "-" for c in output.stem)[:64] or "run"
    text = "\n".join([
        f"# Written by `cbrun init {data_path}`: a starting point that trains as it is.",
        "# Check it with `cbrun validate`, train it with `cbrun train`.",
        f"name: {_q(name)}", "seed: 42", data, model, compile_,
        "fit:\n  epochs: 50                # EarlyStopping below usually ends it sooner",
        _callbacks()])
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    _check(output)
    click.echo(f"wrote {output}; train it with: cbrun train {output}")
    return 0
