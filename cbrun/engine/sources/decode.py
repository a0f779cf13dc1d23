"""Image files decoded as keras.utils.image_dataset_from_directory decodes them, or read back
from the raw pixels of a `cache: disk` copy. Here, not in images.py, so that ImageFiles
(sources/__init__.py) can decode a few samples without a circle of imports."""

from __future__ import annotations

from typing import Any


def _converted(data, channels: int):
    """A BMP or GIF (which decode only to 3 or 4 channels), or a JPEG asked for 4: decoded
    as it is, then turned into `channels`."""
    import tensorflow as tf

    image = tf.io.decode_image(data, channels=0, expand_animations=False)
    have = tf.shape(image)[-1]
    rgb = tf.cond(have == 1, lambda: tf.image.grayscale_to_rgb(image), lambda: image[..., :3])
    if channels == 1:
        return tf.image.rgb_to_grayscale(rgb)
    opaque = tf.concat([rgb, tf.fill(tf.concat([tf.shape(rgb)[:2], [1]], 0),
                                     tf.constant(255, image.dtype))], axis=-1)
    return tf.cond(have == 4, lambda: image, lambda: opaque)


def decode(path, size: tuple[int, int], channels: int):
    """One file to a float32 image of `size`, as keras.utils.image_dataset_from_directory
    decodes and resizes (bilinear). Keras asks the decoder for `channels` directly, which
    fails for grayscale BMP and GIF files and for RGBA JPEGs; those are decoded as they are
    and converted (PNG and JPEG otherwise decode exactly as Keras decodes them)."""
    import tensorflow as tf

    data = tf.io.read_file(path)
    if channels == 3:  # every format decodes to 3 channels
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    else:
        head = tf.strings.substr(data, 0, 4)
        native = tf.strings.substr(data, 0, 2) == b"\xff\xd8" if channels == 1 else \
            tf.constant(False)
        native = tf.logical_or(native, head == b"\x89PNG")
        image = tf.cond(native, lambda: tf.io.decode_image(data, channels=channels,
                                                           expand_animations=False),
                        lambda: _converted(data, channels))
    image = tf.image.resize(image, size)
    image.set_shape((*size, channels))
    return image


def read_image(path, files: Any):
    """One sample of `files`: a file decoded, or a cached copy's float32 pixels."""
    import tensorflow as tf

    if not files.raw:
        return decode(path, files.size, files.channels)
    pixels = tf.io.decode_raw(tf.io.read_file(path), tf.float32)
    return tf.reshape(pixels, (*files.size, files.channels))


