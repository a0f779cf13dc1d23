"""Several processes, one training (`distribute: data_parallel` on JAX): joining the job,
what process 0 tells the others, the agreement to stop, and the end of the job when one
process fails.

JAX's distributed runtime joins the processes (`jax.distributed.initialize`: the
coordinator's address, the count and this process's id, or what SLURM and Open MPI set)
and holds a key-value store on the coordinator, which is process 0. cbrun talks through
that store, never through the model's collectives:

- process 0 decides (train or resume, which run, which saved state) and publishes it as
  the `job`; the others only follow it (`cbrun/commands/job.py`);
- a process that leaves a job for any reason but its end (an exception, a signal before
  training) publishes why under `left/<id>`; a watcher thread in every process polls for
  it and ends its own process at once: its main thread is blocked in a collective that
  will never complete, and JAX itself only notices a missing process after its heartbeat
  timeout (and its shutdown barrier waits 5 minutes more). Process 0 first records the
  run as failed, with the process and its reason;
- a stop (a signal, fit.max_time) is agreed, inside an epoch in rounds before a batch
  (`Rounds`) and at epoch ends (`agree_to_stop`): every process must stop before the same
  batch, or the others wait forever in the next one.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# A process SIGKILLed (or frozen) is noticed by process 0 once its watcher thread has not
# beaten for SILENT_S: process 0 records the run failed, naming it, and the job ends. JAX's
# own heartbeat (a thread of its own too) is the backstop, later: when it trips, JAX aborts
# every process with a C++ stack trace and nothing recorded. Neither comes from the
# training loop, so a long step never trips them.
SILENT_S = 15.0
DONE = "done"
HEARTBEAT_S = 60
# How long a process waits for the others to join, and process 0's word to come.
JOIN_S = 600
POLL_S = 0.25
PREFIX = "cbrun/"
# How a collective says its peer is gone (gloo on CPUs, NCCL on GPUs, JAX's coordinator).
LOST_MARKS = ("Gloo", "gloo", "NCCL", "Connection reset by peer", "Connection closed",
              "coordination service", "heartbeat")
# A round inside an epoch costs each process one key written and one read per other
# process, through the coordinator (2.4 ms for two processes on 2 busy cores); process 0
# plans the next one ROUND_S of training later, from the pace it measured. A process that
# does not come to a round in ROUND_WAIT_S (the others are at most one batch apart: each
# batch is a collective) is somewhere else: the job ends rather than waiting forever.
ROUND_S = 1.0
ROUND_WAIT_S = 600.0
# What process 0 writes of the others at the job's end: the digest of each one's weights.
PROCESSES_FILE = "processes.json"


def import_jax() -> None:
    """JAX before Keras, with its CPU collectives over gloo (what several processes on CPUs
    need; on GPUs NCCL is used whatever this says)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")


@dataclass
class Peers:
    """This process's place in a job of several processes, once joined."""

    index: int
    count: int
    client: object
    # (process id, why) -> None: process 0's record of the failure, set once the run
    # directory exists; called from the watcher thread just before the process ends.
    on_left: Callable[[int, str], None] | None = None
    stopped: bool = False  # the job agreed to stop (a signal, the time limit): all leave
    _stop: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None

    @property
    def writer(self) -> bool:
        """Process 0 writes the run directory; the others write to a scratch folder."""
        return self.index == 0

    def tell(self, key: str, value: str) -> None:
        self.client.key_value_set(PREFIX + key, value)

    def hear(self, key: str, timeout_s: float = JOIN_S) -> str:
        return self.client.blocking_key_value_get(PREFIX + key, int(timeout_s * 1000))

    def leave(self, why: str) -> None:
        """Tell the others that this process is leaving the job before its end, and why.
        The caller then ends its process (os._exit): see `end_now`."""
        self._stop.set()
        with contextlib.suppress(Exception):  # the coordinator is gone: the others see that
            self.client.key_value_set(f"{PREFIX}left/{self.index}", why[:2000])

    def watch(self) -> None:
        self._watcher = threading.Thread(target=self._watch, daemon=True,
                                         name="cbrun-peers")
        self._watcher.start()

    def _watch(self) -> None:
        beats = 0
        # Process 0's view of each other process's beat: (last value, when it changed).
        heard: dict[str, tuple[str | None, float]] = {}
        started = time.monotonic()
        while not self._stop.wait(POLL_S):
            beats += 1
            try:
                self.client.key_value_set(f"{PREFIX}alive/{self.index}", str(beats),
                                          allow_overwrite=True)
                left = self.client.key_value_dir_get(f"{PREFIX}left/")
                silent = self._silent(heard, started) if self.writer else None
            except Exception as exc:  # noqa: BLE001 - the coordinator (process 0) is gone
                if self._stop.is_set():
                    return
                self._peer_left(0, f"its coordinator cannot be reached ({exc})".splitlines()[0])
                return
            others = [(int(key.rsplit("/", 1)[1]), why) for key, why in left
                      if int(key.rsplit("/", 1)[1]) != self.index]
            if others and not self._stop.is_set():
                self._peer_left(*min(others))
                return
            if silent is not None and not self._stop.is_set():
                self._peer_left(silent, f"it stopped answering for {SILENT_S:.0f} s (killed, "
                                        "out of memory, or its machine went down)")
                return

    def _silent(self, heard: dict, started: float) -> int | None:
        """The first process whose beat has not moved for SILENT_S (of this process's
        time: a pause of this watcher's own never makes another process look silent)."""
        now = time.monotonic()
        beats = dict(self.client.key_value_dir_get(f"{PREFIX}alive/"))
        for index in range(1, self.count):
            key = f"{PREFIX}alive/{index}"
            value = beats.get(key)
            last, since = heard.get(key, (None, started))
            if value == DONE:  # at the job's end, waiting for process 0 there
                continue
            if value != last:
                heard[key] = (value, now)
            elif now - since > SILENT_S:
                return index
        return None

    def _peer_left(self, index: int, why: str) -> None:
        line = f"process {index} of {self.count} failed: {why}"
        if self.on_left is not None:
            try:
                self.on_left(index, why)
            except BaseException as exc:  # noqa: BLE001 - ending anyway; say so
                line += f" (run.json not updated: {exc})"
        if self.writer:
            end_now(f"error: {line}; the other processes were stopped", 1)
        end_now(None, 1)

    def lost(self, exc: Exception):
        """The error to report for a collective that failed because another process left
        without a word (SIGKILL, a machine gone): gloo and NCCL see the connection drop at
        once, before JAX's heartbeat names the process. None for any other error."""
        text = str(exc)
        if not any(mark in text for mark in LOST_MARKS):
            return None
        if self._watcher is not None and self._watcher.is_alive():
            # Process 0's watcher names the silent process within SILENT_S, records the run
            # and ends this process; the others hear process 0 leave. Said here only if not.
            self._watcher.join(timeout=SILENT_S + 5)
        from cbrun.errors import RunError

        line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        return RunError(f"another process of the job stopped answering (killed, or its "
                        f"machine went down): {line}; resume the run with the same "
                        f"number of processes")

    def agree_to_stop(self, epoch: int, mine: int | None) -> int | None:
        """Whether the job stops after this epoch: every process says whether it was asked
        to (`mine`: the signal number, or None), and all stop if one was. The reason of the
        lowest process that was asked is returned to all."""
        self.tell(f"stop/{epoch}/{self.index}", "-" if mine is None else str(mine))
        reasons = self.hear_all(f"stop/{epoch}", 24 * 3600)
        asked = [int(r) for r in reasons if r != "-"]
        self.stopped = bool(asked)
        return asked[0] if asked else None

    def hear_all(self, key: str, timeout_s: float) -> list[str]:
        """Every process's value of `key/<id>`, this one's included, once all have said it;
        RunError naming the first missing process after `timeout_s`."""
        values = []
        for index in range(self.count):
            try:
                values.append(self.hear(f"{key}/{index}", timeout_s))
            except Exception as exc:  # noqa: BLE001 - the client's deadline error
                from cbrun.errors import RunError

                raise RunError(f"process {index} of {self.count} did not come to {key} within "
                               f"{timeout_s:.0f} s, where every process must meet; the job "
                               f"is stopped rather than left waiting ({exc})".splitlines()[0]
                               ) from None
        return values

    def same_weights(self, model, run_dir) -> None:
        """At the job's end, after the model is saved: every process says a digest of its
        weights, and process 0 writes them all to the run's processes.json. Replicas that
        drifted apart (a collective that did not reduce what it should) fail the run: its
        model.keras would be process 0's alone."""
        import hashlib
        import json

        import numpy as np

        digest = hashlib.sha256()
        for variable in model.weights:
            digest.update(np.ascontiguousarray(np.asarray(variable.numpy())).tobytes())
        self.tell(f"weights/{self.index}", digest.hexdigest())
        digests = [self.hear(f"weights/{i}") for i in range(self.count)]
        if not self.writer:
            return
        (run_dir / PROCESSES_FILE).write_text(json.dumps(
            {"processes": self.count, "weights_sha256": digests}, indent=1) + "\n")
        differ = [i for i, d in enumerate(digests) if d != digests[0]]
        if differ:
            from cbrun.errors import RunError

            raise RunError(f"the weights of process {differ[0]} differ from process 0's at "
                           f"the end of training (digests in {PROCESSES_FILE}); the saved "
                           "model is process 0's")

    def finish(self) -> None:
        """The job's end, reached by every process: JAX's shutdown barrier, then the
        coordinator (process 0's) goes last."""
        self._stop.set()
        if self._watcher is not None:  # its last beat written before the word "done"
            self._watcher.join(timeout=5)
        with contextlib.suppress(Exception):
            self.client.key_value_set(f"{PREFIX}alive/{self.index}", DONE,
                                      allow_overwrite=True)
        import jax

        jax.distributed.shutdown()


class Rounds:
    """Where the processes agree, inside an epoch, whether to stop before a batch (a signal
    or fit.max_time reached one of them at any batch), and whether to save the state there
    (process 0's clock for fit.state_every's minutes; batch counts are the same in all).
    A round is held at the first batch of an epoch past its start (or past the batch a
    resume starts at), then at the batch process 0 names in each round: every process holds
    the same rounds, whatever its speed, so each reaches the next one."""

    def __init__(self, peers: Peers, seconds: float = ROUND_S, wait_s: float = ROUND_WAIT_S):
        self.peers, self.seconds, self.wait_s = peers, seconds, wait_s
        self.epoch = -1
        self.next = 0  # the batch (of self.epoch) of the next round
        self.interval = 1  # batches between rounds, as process 0 last planned it
        self.reason: int | None = None  # the agreed stop (a signal number; 0: the time)
        self._last: tuple[float, int] | None = None  # process 0: (when, batch) of the last
        self._said: str | None = None  # this process's key of the last round

    def at(self, epoch: int, done: int, mine: int | None, due: bool) -> tuple[bool, bool]:
        """Before batch `done` of `epoch` (0-based, done > 0): (stop here, save here).
        mine: this process's reason to stop, or None; due: whether its clock says a state
        is due (process 0's decides)."""
        if epoch == self.epoch and done < self.next:
            return False, False
        if epoch != self.epoch:
            self.epoch, self._last = epoch, None
        peers = self.peers
        if peers.writer:
            now = time.monotonic()
            if self._last is not None and done > self._last[1]:
                pace = (now - self._last[0]) / (done - self._last[1])
                self.interval = max(1, round(self.seconds / pace)) if pace > 0 else 1
            self._last = (now, done)
        key = f"round/{epoch}/{done}"
        peers.tell(f"{key}/{peers.index}",
                   f"{'-' if mine is None else mine} {int(due)} {self.interval}")
        said = [value.split() for value in peers.hear_all(key, self.wait_s)]
        if self._said is not None:  # every process has read it: they all came to this one
            with contextlib.suppress(Exception):
                peers.client.key_value_delete(PREFIX + self._said)
        self._said = f"{key}/{peers.index}"
        self.interval = int(said[0][2])
        self.next = done + self.interval
        asked = [int(reason) for reason, _due, _every in said if reason != "-"]
        if asked:
            self.reason = asked[0]
            peers.stopped = True
        return bool(asked), said[0][1] == "1"


_current: list[Peers] = []


def current() -> Peers | None:
    """The job this process has joined, or None (one process)."""
    return _current[0] if _current else None


def several() -> bool:
    peers = current()
    return peers is not None and peers.count > 1


def join(coordinator: str | None, count: int | None, index: int | None) -> Peers:
    """Join the job (all None: the scheduler's environment, SLURM or Open MPI, as JAX
    reads it). Blocks until every process has joined, up to JOIN_S."""
    import_jax()
    import jax
    from jax._src.distributed import global_state

    jax.distributed.initialize(coordinator_address=coordinator, num_processes=count,
                               process_id=index, initialization_timeout=JOIN_S,
                               heartbeat_timeout_seconds=HEARTBEAT_S)
    peers = Peers(jax.process_index(), jax.process_count(), global_state.client)
    _current.append(peers)
    peers.watch()
    return peers


def end_now(line: str | None, code: int) -> None:
    """End this process at once: its main thread may be blocked in a collective that no
    other process will join, and a normal exit would wait in JAX's shutdown barrier."""
    try:
        if line:
            sys.stderr.write(line + "\n")
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)
