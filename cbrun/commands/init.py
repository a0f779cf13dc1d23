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
from cbrun.suggest import did_you_mean

MAX_CLASSES = 50  # an integer label with more distinct values is taken as a number
LABEL_NAMES = ("label", "labels", "target", "class", "y", "species", "category")


def _q(name: str) -> str:
    """A column name as YAML reads it back: bare where plain, else a quoted string."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name) else json.dumps(name)


def _input_name(column: str, taken: set[str]) -> str:
    """A graph input name (letters, digits, _) for a column, unique among `taken`."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", column).strip("_") or "text"
    base = base if base[0].isalpha() else f"c_{base}"
    name, n = base[:60], 2
    while name in taken:
        name, n = f"{base[:57]}_{n}", n + 1
    taken.add(name)
    return name


def _is_free_text(column) -> bool:
    """Sentences rather than categories: most values differ and hold several words."""
    values = [v for v in column.to_pylist() if v is not None]
    if len(values) < 10:
        return False
    words = sum(len(v.split()) for v in values) / len(values)
    return words >= 3 and len(set(values)) > 0.5 * len(values)


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


def _regression() -> tuple[list[str], str]:
    return (["- {type: Dense, units: 1}   # one number out: a regression"],
            ("compile:\n  optimizer: {type: Adam, learning_rate: 0.001}\n  loss: mse\n"
             "  metrics: [mae]"))


def _table(path: Path, rel: str, label: str | None) -> tuple[str, str, str]:
    import pyarrow as pa

    from cbrun.tables import _is_text

    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        table, source = pq.read_table(path), "parquet"
    else:
        import pyarrow.csv as pacsv

        table, source = pacsv.read_csv(path), "csv"
    columns = table.column_names
    if label is None:
        label = next((c for c in columns if c.lower() in LABEL_NAMES), columns[-1])
    elif label not in columns:
        raise UsageError(f"{path.name} has no column {label!r}{did_you_mean(label, columns)}"
                         f"; its columns: {', '.join(columns)}")
    features = [c for c in columns if c != label]
    target = table.column(label)
    values = sorted(set(target.to_pylist()) - {None})
    if _is_text(target):
        head, compile_ = _classification(len(values), f"class ({', '.join(map(str, values[:6]))}"
                                                      f"{', ...' if len(values) > 6 else ''})")
        kind = f"{len(values)} classes"
    elif pa.types.is_integer(target.type) and len(values) <= MAX_CLASSES and values[0] >= 0:
        head, compile_ = _classification(int(values[-1]) + 1, "class id 0..")
        kind = f"{int(values[-1]) + 1} classes (integer ids)"
    else:
        head, compile_ = _regression()
        kind = "a number (regression)"
    strings = [c for c in features if _is_text(table.column(c))]
    texts = [c for c in strings if _is_free_text(table.column(c))]
    if texts:
        return _text_table(source, rel, label, kind, features, texts, head, compile_)
    data = _head("data", [
        f"source: {source}",
        f"path: {rel}",
        f"label: {_q(label)}          # the target: {kind}",
        f"features: [{', '.join(map(_q, features))}]",
        *([(f"# string columns {', '.join(strings)} become integer ids (vocabulary saved "
            "in the run's data/table.json)")] if strings else []),
        "validation_split: 0.2    # the last 20% of the rows",
        "batch_size: 32",
    ])
    model = _head("model", [
        f"input_shape: [{len(features)}]",
        "layers:",
        "  # Learns each column's mean and variance from the training rows before epoch 1.",
        "  - {type: Normalization, adapt: true}",
        "  - {type: Dense, units: 64, activation: relu}",
        *[f"  {line}" for line in head],
    ])
    return data, model, compile_


def _text_table(source: str, rel: str, label: str, kind: str, features: list[str],
                texts: list[str], head: list[str], compile_: str) -> tuple[str, str, str]:
    """A graph: each free-text column through its own adapted TextVectorization and an
    Embedding, the other columns together through an adapted Normalization."""
    taken = {"joined", "hidden", "output"}  # the layer names written below
    text_inputs = {_input_name(c, taken): c for c in texts}
    rest = [c for c in features if c not in texts]
    groups = {name: [column] for name, column in text_inputs.items()}
    numbers = _input_name("numbers", taken) if rest else None
    if numbers:
        groups[numbers] = rest
    data = _head("data", [
        f"source: {source}",
        f"path: {rel}",
        f"label: {_q(label)}          # the target: {kind}",
        "features:                # one named input per text column, the rest together",
        *[f"  {name}: [{', '.join(map(_q, cols))}]" for name, cols in groups.items()],
        f"text: [{', '.join(map(_q, texts))}]   # kept as raw strings for TextVectorization",
        "validation_split: 0.2    # the last 20% of the rows",
        "batch_size: 32",
    ])
    inputs = [f"  {name}: {{shape: [1], dtype: string}}" for name in text_inputs]
    if numbers:
        inputs.append(f"  {numbers}: {{shape: [{len(rest)}]}}   # string columns here become "
                      "integer ids")
    layers, joined = [], []
    for name in text_inputs:
        layers += [
            f"  # {name}: the 10000 most frequent words of the training rows, 100 per row.",
            (f"  - {{name: {name}_words, type: TextVectorization, adapt: true, "
            f"max_tokens: 10000, output_sequence_length: 100, inputs: {name}}}"),
            (f"  - {{name: {name}_vectors, type: Embedding, input_dim: 10000, output_dim: 32, "
            f"inputs: {name}_words}}"),
            f"  - {{name: {name}_mean, type: GlobalAveragePooling1D, inputs: {name}_vectors}}",
        ]
        joined.append(f"{name}_mean")
    if numbers:
        layers.append(f"  - {{name: {numbers}_scaled, type: Normalization, adapt: true, "
                      f"inputs: {numbers}}}")
        joined.append(f"{numbers}_scaled")
    last = joined[0]
    if len(joined) > 1:
        layers.append(f"  - {{name: joined, type: Concatenate, inputs: [{', '.join(joined)}]}}")
        last = "joined"
    layers.append(f"  - {{name: hidden, type: Dense, units: 64, activation: relu, inputs: {last}}}")
    out = head[0].replace("- {type: Dense,", "- {name: output, type: Dense,").replace(
        "}", ", inputs: hidden}", 1)
    layers.append(f"  {out}")
    model = _head("model", ["inputs:", *inputs, "layers:", *layers, "outputs: output"])
    return data, model, compile_


def _image_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from a PNG or JPEG header, without an image library."""
    data = path.read_bytes()[:65536]
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


def _images(path: Path, rel: str) -> tuple[str, str, str]:
    from cbrun.config.data.images import list_images

    classes, files = list_images(path)
    if not files:
        raise UsageError(f"{path} has no class folders with images (e.g. {path}/cat/1.png)")
    size = _image_size(files[0][0]) or (64, 64)
    side = [min(d, 128) for d in size]
    head, compile_ = _classification(len(classes), f"class ({', '.join(classes[:6])}"
                                                   f"{', ...' if len(classes) > 6 else ''})")
    data = _head("data", [
        "source: images",
        f"path: {rel}            # {len(classes)} class folders, {len(files)} images",
        f"image_size: [{side[0]}, {side[1]}]   # every image is resized to this",
        "color_mode: rgb",
        "validation_split: 0.2    # the last 20% of each class's files",
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
    x = next((n for n in ("x", "x_train", "inputs", "features") if n in headers), names[0])
    y = next((n for n in ("y", "y_train", "labels", "targets", "label") if n in headers),
             next(n for n in names if n != x))
    x_shape, y_shape = headers[x][0], headers[y][0]
    with np.load(path, allow_pickle=False) as archive:
        labels = archive[y]
    if labels.dtype.kind in "iu" and labels.ndim == 1 and labels.min() >= 0 \
            and labels.max() < 1000:
        head, compile_ = _classification(int(labels.max()) + 1, "class id")
    else:
        head, compile_ = _regression()
    shapes = ", ".join(f"{k} {list(v[0])}" for k, v in headers.items())
    data = _head("data", [
        "source: npz",
        f"path: {rel}            # arrays: {shapes}",
        f"x: {x}",
        f"y: {y}",
        "validation_split: 0.2    # the last 20% of the samples",
        "batch_size: 32",
    ])
    model = _head("model", [
        f"input_shape: {list(x_shape[1:]) or [1]}",
        "layers:",
        *(["  - {type: Flatten}"] if len(x_shape) > 2 else []),
        "  - {type: Dense, units: 64, activation: relu}",
        *[f"  {line}" for line in head],
    ])
    del y_shape
    return data, model, compile_


@click.command()
@click.argument("data_path", metavar="DATA", type=click.Path(path_type=Path, exists=True))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Where to write the config. Defaults to DATA's name with .yaml, next to it.")
@click.option("--label", help="The target column of a table (default: a column named label, "
                              "target, class... or the last one).")
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
def init(data_path: Path, output: Path | None, label: str | None, force: bool) -> int:
    """Write a commented starter config for DATA: a CSV or Parquet table, a folder of class
    folders of images, or an .npz. It validates and trains as it is."""
    stem = data_path.name if data_path.is_dir() else data_path.stem
    output = output or data_path.parent / f"{stem}.yaml"
    if output.exists() and not force:
        raise UsageError(f"{output} exists; choose another --output, or --force")
    rel = Path(os.path.relpath(data_path.absolute(), output.absolute().parent)).as_posix()
    suffix = data_path.suffix.lower()
    if data_path.is_dir():
        data, model, compile_ = _images(data_path, rel)
    elif suffix in (".csv", ".parquet"):
        data, model, compile_ = _table(data_path, rel, label)
    elif suffix == ".npz":
        data, model, compile_ = _npz(data_path, rel)
    else:
        raise UsageError(f"{data_path} is not a .csv, .parquet, .npz or a folder of class "
                         "folders of images")
    name = "".join(c if c.isalnum() or c in "_.-" else "-" for c in stem)[:64] or "run"
    text = "\n".join([
        f"# Written by `cbrun init {data_path}`: a starting point that trains as it is.",
        "# Check it with `cbrun validate`, train it with `cbrun train`.",
        f"name: {name}", "seed: 42", data, model, compile_,
        "fit:\n  epochs: 50                # EarlyStopping below usually ends it sooner",
        _callbacks()])
    output.write_text(text)
    click.echo(f"wrote {output}; train it with: cbrun train {output}")
    return 0
