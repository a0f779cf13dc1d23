"""keras.callbacks.TensorBoard with its weight histograms computed in numpy.

Keras writes each weight's histogram through TensorBoard's TF implementation: about thirty
eager ops and two conds per weight, ~4 ms each, which on a small model is most of an epoch's
TensorBoard time. Here the same buckets (TensorBoard's rule: 30 equal-width buckets from the
minimum to the maximum, the last edge the maximum itself, a constant weight counted in the
last bucket) are computed in numpy and all of an epoch's histograms written in one op, with
the same tags, step and plugin metadata, so TensorBoard shows the same thing.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.histogram import metadata
from tensorboard.util import tensor_util

BUCKETS = 30  # tensorboard.plugins.histogram.summary_v2.DEFAULT_BUCKET_COUNT


def buckets(values: np.ndarray, count: int = BUCKETS) -> np.ndarray | None:
    """[count, 3] rows of (left edge, right edge, count); None for values TensorBoard's own
    op would have to judge (NaN or inf)."""
    data = np.asarray(values, dtype=np.float64).ravel()
    if data.size == 0:
        return np.zeros((count, 3))
    if not np.isfinite(data).all():
        return None
    low, high = data.min(), data.max()
    if low == high:
        counts = np.zeros(count)
        counts[-1] = data.size
        edges = np.full(count, high)
        return np.stack([edges, edges, counts], axis=1)
    index = np.minimum(np.floor((data - low) / ((high - low) / count)).astype(np.int64),
                       count - 1)
    counts = np.bincount(index, minlength=count).astype(np.float64)
    edges = np.linspace(low, high, count + 1)
    edges[-1] = high
    return np.stack([edges[:-1], edges[1:], counts], axis=1)


def histogram_summary(tag: str, rows: np.ndarray) -> bytes:
    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(None, None),
                      tensor=tensor_util.make_tensor_proto(rows, dtype=np.float64))
    return summary.SerializeToString()


class TensorBoard(keras.callbacks.TensorBoard):
    def _log_weights(self, epoch):
        protos = []
        with self._train_writer.as_default():
            for layer in self.model.layers:
                for weight in layer.weights:
                    name = weight.path.replace(":", "_")
                    rows = buckets(keras.ops.convert_to_numpy(weight.value))
                    if rows is None:
                        self.summary.histogram(f"{name}/histogram", weight, step=epoch)
                    else:
                        protos.append(histogram_summary(f"{name}/histogram", rows))
                    if self.write_images:
                        self._log_weight_as_image(weight, f"{name}/image", epoch)
            if protos:
                tf.summary.experimental.write_raw_pb(tf.constant(protos), step=epoch)
            self._train_writer.flush()


def build(spec: Any, ctx: Any) -> TensorBoard:
    return TensorBoard(**spec.arguments(ctx))
