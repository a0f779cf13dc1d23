"""Where the processes of a job agree to stop inside an epoch (cbrun/engine/peers.Rounds),
without JAX: two threads stand for two processes, and a dictionary for the coordinator's
key-value store (tests/test_processes.py runs the real thing, with two processes)."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from cbrun.engine.peers import Peers, Rounds
from cbrun.errors import RunError


class Store:
    """The key-value calls of JAX's DistributedRuntimeClient that Rounds makes."""

    def __init__(self):
        self.values: dict[str, str] = {}
        self.changed = threading.Condition()

    def key_value_set(self, key, value, allow_overwrite=False):
        with self.changed:
            assert allow_overwrite or key not in self.values, key
            self.values[key] = value
            self.changed.notify_all()

    def blocking_key_value_get(self, key, timeout_ms):
        with self.changed:
            if not self.changed.wait_for(lambda: key in self.values, timeout_ms / 1000):
                raise TimeoutError(f"DEADLINE_EXCEEDED: {key}")
            return self.values[key]

    def key_value_delete(self, key):
        with self.changed:
            self.values.pop(key, None)


def train(rounds: Rounds, asked_at: int | None, due_at: int | None, seen: list, steps=40):
    """One epoch of `steps` batches, a hook before each (as the StateKeeper's): this
    process is asked to stop from batch `asked_at` on, and its clock says a state is due
    from `due_at` on; it stops where the job agreed."""
    for done in range(1, steps):
        time.sleep(0.004)  # a batch: process 0 plans rounds from this pace
        stop, save = rounds.at(0, done, signal.SIGTERM if asked_at and done >= asked_at
                               else None, due_at is not None and done >= due_at)
        if stop or save:
            seen.append((done, stop, save))
        if stop:
            return


def test_every_process_stops_and_saves_at_the_same_batch_whoever_was_asked():
    store = Store()
    seen: list[list] = [[], []]
    # A round about every 5 batches of process 0's pace.
    rounds = [Rounds(Peers(i, 2, store), seconds=0.02, wait_s=30) for i in range(2)]
    threads = [threading.Thread(target=train, args=(rounds[0], None, 9, seen[0])),
               threading.Thread(target=train, args=(rounds[1], 17, None, seen[1]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert seen[0] == seen[1], seen
    (save_at, _, saved), *_, (stop_at, stopped, _) = seen[0]
    # Process 0's clock decides the saves, process 1's signal the stop, at a round held
    # after them: the same batch in both.
    assert saved and save_at >= 9
    assert stopped and 17 <= stop_at < 39
    assert rounds[0].reason == rounds[1].reason == signal.SIGTERM
    assert rounds[0].peers.stopped and rounds[1].peers.stopped
    # A round's keys are deleted once every process has read them: the store stays small.
    assert len(store.values) <= 4, store.values


def test_a_process_that_never_comes_to_a_round_ends_the_wait_naming_it():
    rounds = Rounds(Peers(0, 2, Store()), wait_s=0.3)
    started = time.monotonic()
    with pytest.raises(RunError, match="process 1 of 2 did not come to round/0/1 within"):
        rounds.at(0, 1, None, False)
    assert time.monotonic() - started < 30
