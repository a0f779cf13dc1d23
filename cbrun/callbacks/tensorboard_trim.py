"""Cut TensorBoard event files back to a saved state.

A run killed after epoch 7's events were written but before epoch 7's state was saved
resumes from epoch 6 and writes epoch 7 again. TensorBoard would then show two points at
step 7 (or a line that jumps back). Before resuming, cbrun rewrites each event file without
the events past the state: epoch summaries at steps >= epochs_done, batch summaries past the
saved batch counter, evaluation-vs-iterations summaries past the saved optimizer step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# TensorFlow is imported inside the functions: callbacks/ is the lower floor, and only a
# resume of a run with TensorBoard event files calls them.


def _is_model_summary(event: Any) -> bool:
    return (event.HasField("summary") and bool(event.summary.value)
            and event.summary.value[0].tag == "keras")


def _keep(event: Any, epochs_done: int, train_batches: int,
          iterations: int) -> bool:
    if not event.HasField("summary") or not event.summary.value:
        return True  # file version, graph, run metadata: not on a step axis
    tag = event.summary.value[0].tag
    if tag == "keras":
        return False  # the model summary: the resumed process writes it again at step 0
    if tag.startswith("batch_"):
        return event.step <= train_batches
    if tag.startswith("evaluation_") and tag.endswith("_vs_iterations"):
        return event.step <= iterations
    return event.step < epochs_done


def _read_records(path: Path) -> list[bytes]:
    import tensorflow as tf

    records = []
    try:
        for record in tf.data.TFRecordDataset(str(path)):
            records.append(bytes(record.numpy()))
    except tf.errors.DataLossError:
        pass  # a record cut short by the kill; the whole ones before it are kept
    return records


def trim_event_files(log_dir: Path, epochs_done: int, train_batches: int,
                     iterations: int) -> int:
    """Rewrite every events file under log_dir; returns how many events were dropped."""
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2

    dropped = 0
    for path in sorted(log_dir.rglob("events.out.tfevents.*")):
        records = _read_records(path)
        events = [event_pb2.Event.FromString(r) for r in records]
        kept = [r for r, event in zip(records, events, strict=True)
                if _keep(event, epochs_done, train_batches, iterations)]
        if len(kept) == len(records):
            continue
        # The model summary is written again, not lost: only what came after the state counts.
        summaries = sum(1 for event in events if _is_model_summary(event))
        dropped += len(records) - len(kept) - summaries
        tmp = path.with_name(path.name + ".trim")
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for record in kept:
                writer.write(record)
        os.replace(tmp, path)
    return dropped
