"""Class folders of images: listed here, decoded by tf.data while training (cbrun/engine/
data.py), or decoded once: into memory (`cache: memory`) or into raw pixel files inside the
run directory (`cache: disk`), read back by index so that the (seed, epoch) order holds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from cbrun.config.data.images import list_images, split_files
from cbrun.data.splits import held_out
from cbrun.engine.sources import ImageFiles, Split, Splits
from cbrun.engine.sources.decode import decode
from cbrun.errors import RunError
from cbrun.run.runguard import open_new

CACHE_DIR = "cache"  # inside the run directory


def _files(cfg, folder: Path, labels: list[int], paths: list[str]) -> Split:
    files = ImageFiles(np.array(paths, dtype=str), tuple(cfg.image_size), cfg.channels)
    return Split(files, np.array(labels, dtype=np.int32))


def _listing(cfg, folder: Path) -> tuple[list[str], list[str], list[int]]:
    classes, files = list_images(folder)
    return classes, [str(f) for f, _ in files], [i for _, i in files]


def load(cfg, config_dir: Path, *, seed: int, run_dir: Path | None = None) -> Splits:
    classes, paths, labels = _listing(cfg, config_dir / cfg.path)
    parts, split = split_files(paths, labels, cfg, seed)
    splits = {name: _files(cfg, config_dir, lab, pth) if pth else None
              for name, (pth, lab) in parts.items()}
    for name in ("validation", "test"):
        folder = getattr(cfg, f"{name}_path")
        if folder:
            _, pth, lab = _listing(cfg, config_dir / folder)
            splits[name] = _files(cfg, config_dir, lab, pth)
    if cfg.cache:
        splits = _cached(cfg.cache, splits, run_dir)
    return Splits(splits["train"], splits["validation"], splits["test"],
                  {"classes.json": classes, **held_out(cfg, split)})


def _cached(cache: str, splits: dict[str, Split | None], run_dir: Path | None) -> dict:
    import tensorflow as tf

    try:
        if cache == "memory":
            return {name: split and in_memory(split) for name, split in splits.items()}
        if run_dir is None:  # nowhere to keep a disk copy: stream
            return splits
        return {name: split and on_disk(split, run_dir / CACHE_DIR / "images" / name)
                for name, split in splits.items()}
    except tf.errors.InvalidArgumentError as exc:
        error = decode_error(splits.values())
        if error is None:
            raise
        raise error from exc


def in_memory(split: Split) -> Split:
    """Every image decoded once, in file order, into one array."""
    return Split(np.concatenate([b.numpy() for b in _decoded_batches(split.x)]), split.y)


def _decoded_batches(files: ImageFiles):
    import tensorflow as tf

    return (tf.data.Dataset.from_tensor_slices(files.encoded)
            .map(lambda p: decode(p, files.size, files.channels),
                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(256))


def on_disk(split: Split, folder: Path) -> Split:
    """Every image decoded once, in file order, into a file of raw pixels under `folder`;
    a folder that a complete earlier pass left (a resumed run) is used as it is. The
    listing of the source files is part of the check, so a changed folder is decoded
    again."""
    files = split.x
    listing = "\n".join([f"{files.size} {files.channels}", *map(str, files.paths)]) + "\n"
    done = folder / "complete"
    names = np.array([str(folder / f"{i:07d}.f32") for i in range(len(files))])
    cached = ImageFiles(names, files.size, files.channels, raw=True)
    if done.is_file() and done.read_text(errors="surrogateescape") == listing:
        return Split(cached, split.y)
    folder.mkdir(parents=True, exist_ok=True)
    done.unlink(missing_ok=True)
    index = 0
    for batch in _decoded_batches(files):
        for image in batch.numpy():
            handle = open_new(Path(names[index]))
            try:
                os.write(handle, image.astype(np.float32).tobytes())
            finally:
                os.close(handle)
            index += 1
    handle = open_new(done)  # last: a pass cut short leaves no `complete` and is redone
    try:
        os.write(handle, listing.encode("utf-8", "surrogateescape"))
    finally:
        os.close(handle)
    return Split(cached, split.y)


def undecodable(files: ImageFiles) -> list[int]:
    """The indices of the files that do not decode, in one parallel pass: tf.data drops the
    samples whose decoding failed, and the missing indices are theirs. Run after a
    pipeline failed, to name the files instead of showing TensorFlow's stack."""
    import tensorflow as tf

    if files.raw:  # decoded pixels, written by cbrun
        return []
    indices = tf.data.Dataset.range(len(files))
    paths = tf.constant(files.encoded)
    # A sum of the pixels, not their count: the count is known from the shapes alone, and
    # the graph would skip the decoding.
    decoded = (indices.map(lambda i: (i, tf.reduce_sum(decode(tf.gather(paths, i), files.size,
                                                              files.channels))),
                           num_parallel_calls=tf.data.AUTOTUNE)
               .ignore_errors(log_warning=False))
    good = {int(i) for i, _ in decoded.as_numpy_iterator()}
    return [i for i in range(len(files)) if i not in good]


def _reason(path: str, files: ImageFiles) -> str:
    import tensorflow as tf

    try:
        decode(path, files.size, files.channels)
    except tf.errors.InvalidArgumentError as exc:
        # TensorFlow wraps it: "{{function_node __wrapped__DecodeImage...}} " before,
        # " [Op:DecodeImage] name: " after.
        return exc.message.strip().splitlines()[0].split("}} ", 1)[-1].split(" [Op:")[0]
    return "it failed inside the input pipeline"


def decode_message(inputs) -> str | None:
    """The line that names the image files among `inputs` (splits' x: ImageFiles are looked
    at, arrays skipped) that do not decode, or None when they all do (the failure was
    something else)."""
    bad = [(files, str(files.paths[i])) for files in inputs
           if isinstance(files, ImageFiles) for i in undecodable(files)]
    if not bad:
        return None
    (files, first), more = bad[0], [path for _, path in bad[1:]]
    also = ""
    if more:
        shown = ", ".join(more[:3]) + (f" and {len(more) - 3} more" if len(more) > 3 else "")
        also = f"; also {shown}"
    return (f"cannot decode the image {first} ({_reason(first, files)}){also}; remove or "
            f"replace {'them' if more else 'it'}")


def decode_error(splits, error: type[Exception] = RunError) -> Exception | None:
    """The error that names the images of `splits` that do not decode, if any."""
    message = decode_message(split.x for split in splits if split is not None)
    return None if message is None else error(message)


@contextmanager
def images_named(splits, error: type[Exception] = RunError) -> Iterator[None]:
    """TensorFlow's decode failure inside a pipeline over `splits` becomes one line that
    names the files (as `error`); any other failure passes through as it is."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.InvalidArgumentError as exc:
        named = decode_error(splits, error)
        if named is None:
            raise
        raise named from exc
