"""`cbrun init` for images: a folder of class folders, or the train/val/test layout (inside
the folder given, or beside it when the folder given is the training one). The size and the
channels come from the files' headers (cbrun/data/imageheader.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from cbrun.commands.init import templates as t
from cbrun.commands.init.document import Block, Items
from cbrun.commands.init.layout import siblings
from cbrun.data.imageheader import header
from cbrun.errors import UsageError

SAMPLED = 40  # image headers read to pick the size and the colour mode


def _look(files: list[Path]) -> tuple[tuple[int, int], str, str]:
    """(size, color_mode, why) from the headers of a sample of the files."""
    step = max(1, len(files) // SAMPLED)
    seen = [h for f in files[::step][:SAMPLED] if (h := header(f))]
    if not seen:
        return (64, 64), "rgb", "sizes unknown from the headers"
    (height, width), _ = Counter((h, w) for h, w, _ in seen).most_common(1)[0]
    grey = all(c == 1 for _, _, c in seen)
    why = ("the images hold one channel (grey)" if grey else
           "the images are in colour")
    return (min(height, 128), min(width, 128)), "grayscale" if grey else "rgb", why


def images(path: Path, rel_of) -> tuple[Block, Block, Block, str]:
    """(data, model, compile, what it is) for a folder of images. `rel_of(path)`: a path
    as the config will name it (relative to the config's folder)."""
    from cbrun.config.data.images import list_images

    layout = siblings(path, folders=True)
    train = layout["path"]
    classes, files = list_images(train)
    if not files:
        raise UsageError(f"{train} has no class folders with images (e.g. {train}/cat/1.png)")
    (height, width), mode, why = _look([f for f, _ in files])
    channels = 1 if mode == "grayscale" else 3
    head, compile_ = t.classifier(len(classes))
    data = Block().set("source", "images")
    data.set("path", rel_of(train), f"{len(classes)} class folders, {len(files)} images")
    for field in ("validation_path", "test_path"):
        if field in layout:
            count = len(list_images(layout[field])[1])
            data.set(field, rel_of(layout[field]), f"{count} images")
    data.set("image_size", [height, width], "every image is resized to this")
    data.set("color_mode", mode, why)
    if "validation_path" not in layout:
        data.set("validation_split", 0.2, t.split_note("stratified", per_class=True))
        data.set("split", "stratified")
    data.set("batch_size", 32)
    layers = (Items()
              .note("Augmentation goes here, in the model: e.g. {type: RandomFlip, mode: "
                    "horizontal}")
              .add({"type": "Rescaling", "scale": 1 / 255}, "0..255 -> 0..1")
              .add({"type": "Conv2D", "filters": 16, "kernel_size": 3, "activation": "relu"})
              .add({"type": "MaxPooling2D"})
              .add({"type": "Flatten"})
              .add(head, f"one output per class ({t.shown(classes)})"))
    model = Block().set("input_shape", [height, width, channels]).set("layers", layers)
    return data, model, compile_, (f"{len(classes)} classes of {'grey' if channels == 1 else 'colour'} "
                                   f"images")
