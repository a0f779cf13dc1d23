"""How many batches per compiled call `steps_per_execution: auto` runs: as many as fit in a
quarter of a second (the display then moves ~4 times a second), up to a whole epoch.

The time of a training step is estimated before `fit` from the model's forward pass on
real samples (the lesser of wall-clock and processor time, so a busy machine's waits for a
core do not count), eagerly and in inference mode: nothing is traced and no state changes (no
dropout or seed draw, no statistics), so the run trains exactly as with any other value.
A step (forward, backward, update) is taken as three forward passes. Where no batch is at
hand (image files, a loader's dataset) the old rule stays: ~8 calls an epoch.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

SECONDS_PER_CALL = 0.25
MOST_SECONDS_PER_CALL = 1.0  # a Ctrl-C, fit.max_seconds and the display answer within it
STEP_OVER_FORWARD = 3
TARGET_CALLS_PER_EPOCH = 8  # without a time estimate


def step_seconds(model: Any, split: Any, batch_size: int) -> float | None:
    """Estimated seconds of one training step, or None when the split has no arrays.

    An eager call costs a fixed overhead per layer, far more than a compiled step of a
    small model, so the forward pass of a whole batch is timed against that of one sample:
    the difference is what the batch's samples cost.
    """
    if split.dataset is not None or split.streamed:
        return None
    x = split.x

    def first(n):
        return ({k: np.asarray(v[:n]) for k, v in x.items()} if isinstance(x, dict)
                else np.asarray(x[:n]))

    def forward(batch) -> float:
        best = float("inf")
        for _ in range(3):  # the first call pays for setting up the eager ops
            wall, cpu = time.perf_counter(), time.process_time()
            model(batch, training=False)
            # The lesser of the two clocks: on a loaded machine the wall clock also counts
            # the waits for a core (digits then ran 5 batches per call instead of 45, load
            # 7 on 2 cores), and the processor time counts each core of a multi-threaded op.
            best = min(best, time.perf_counter() - wall, time.process_time() - cpu)
        return best

    one, whole = forward(first(1)), forward(first(batch_size))
    return max(whole - one, 0.0) * STEP_OVER_FORWARD


def batches_per_call(steps: int, seconds: float | None) -> int:
    """The largest divisor of the epoch's steps that keeps a call near a quarter second
    (a divisor, so that every call stays inside one epoch's data); the next divisor up
    where the one below is under half of that, while a call stays within a second."""
    if seconds is None:
        limit = steps // TARGET_CALLS_PER_EPOCH
    else:
        limit = int(SECONDS_PER_CALL / max(seconds, 1e-9))
    limit = min(steps, max(1, limit))
    divisors = [d for d in range(1, steps + 1) if steps % d == 0]
    below = max(d for d in divisors if d <= limit)
    if seconds is None or 2 * below >= limit:
        return below
    # An epoch of a prime count of batches (4,096 rows, a fifth held out, in batches of
    # 32: 103) has no divisor but 1 below the target: a call a batch costs ~2 ms of
    # dispatch each, which doubled that graph's epoch (docs/speed.md), against a call of
    # 0.26 s for the whole epoch.
    above = min(d for d in divisors if d > limit)
    return above if above * seconds <= MOST_SECONDS_PER_CALL else below
