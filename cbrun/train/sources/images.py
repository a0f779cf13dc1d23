"""Class folders of images: listed here, decoded by tf.data while training (cbrun/train/
data.py), or once into memory with `cache: memory`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cbrun.config.data.images import list_images
from cbrun.train.sources import ImageFiles, Split, Splits


def decode(path, size: tuple[int, int], channels: int):
    """One file to a float32 image of `size`, as keras.utils.image_dataset_from_directory
    decodes and resizes (bilinear)."""
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=channels,
                               expand_animations=False)
    image = tf.image.resize(image, size)
    image.set_shape((*size, channels))
    return image


def _files(cfg, folder: Path, labels: list[int], paths: list[str]) -> Split:
    files = ImageFiles(np.array(paths, dtype=str), tuple(cfg.image_size), cfg.channels)
    return Split(files, np.array(labels, dtype=np.int32))


def _listing(cfg, folder: Path) -> tuple[list[str], list[str], list[int]]:
    classes, files = list_images(folder)
    return classes, [str(f) for f, _ in files], [i for _, i in files]


def _per_class_tail(paths, labels, fraction_val, fraction_test):
    """The last files of each class (by name) for validation and test: every class is in
    every split, and the split does not depend on the seed."""
    from cbrun.config.data.common import tail_cuts

    parts = {"train": ([], []), "validation": ([], []), "test": ([], [])}
    for cls in sorted(set(labels)):
        mine = [p for p, c in zip(paths, labels) if c == cls]
        cut, kept = tail_cuts(len(mine), fraction_val, fraction_test)
        for name, chunk in (("train", mine[:cut]), ("validation", mine[cut:kept]),
                            ("test", mine[kept:])):
            parts[name][0].extend(chunk)
            parts[name][1].extend([cls] * len(chunk))
    return parts


def load(cfg, config_dir: Path) -> Splits:
    classes, paths, labels = _listing(cfg, config_dir / cfg.path)
    parts = _per_class_tail(paths, labels, cfg.validation_split, cfg.test_split)
    splits = {name: _files(cfg, config_dir, lab, pth) if pth else None
              for name, (pth, lab) in parts.items()}
    for name in ("validation", "test"):
        folder = getattr(cfg, f"{name}_path")
        if folder:
            _, pth, lab = _listing(cfg, config_dir / folder)
            splits[name] = _files(cfg, config_dir, lab, pth)
    if cfg.cache == "memory":
        splits = {name: split and in_memory(split) for name, split in splits.items()}
    return Splits(splits["train"], splits["validation"], splits["test"],
                  {"classes.json": classes})


def in_memory(split: Split) -> Split:
    """Every image decoded once, in file order, into one array."""
    import tensorflow as tf

    files = split.x
    images = (tf.data.Dataset.from_tensor_slices(files.paths)
              .map(lambda p: decode(p, files.size, files.channels),
                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
              .batch(256))
    return Split(np.concatenate([b.numpy() for b in images]), split.y)


def undecodable(split: Split | None) -> tuple[str, str] | None:
    """(file, TensorFlow's reason) of the first file of a streamed split that does not
    decode, or None. Called after tf.data failed, to name the file instead of showing its
    stack trace."""
    import tensorflow as tf

    if split is None or not split.streamed:
        return None
    for path in split.x.paths:
        try:
            tf.io.decode_image(tf.io.read_file(path), channels=split.x.channels,
                               expand_animations=False)
        except tf.errors.InvalidArgumentError as exc:
            return str(path), exc.message.strip().splitlines()[0]
    return None
