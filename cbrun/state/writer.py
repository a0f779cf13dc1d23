"""The epoch's state written while the next epoch trains.

Writing a large model's state (a 25M-parameter model with Adam: 300 MB, fsync'd) took
15-19 s an epoch on a loaded machine (docs/speed.md); copying its variables, under a second.
So the training thread copies (`capture_state`) and a writer thread writes, fsyncs, renames
into place and then writes run.json as it was when the epoch ended. The guarantees hold:

- a kill at any instant leaves the previous state whole (the write goes through a temporary
  folder and a rename, as before);
- run.json never claims an epoch whose state is not on disk: it is written after the rename,
  from the record as it stood at that epoch's end;
- one write at a time: the next epoch's state waits for the previous one, and the run's end
  (normal or not) waits for the last, so the process never reports an epoch still in flight;
  a write that failed (a full disk) fails the run when it is waited for;
- `written` says how many epochs the states on disk hold, set once a state and its run.json
  are written: the trackers are handed an epoch only then (cbrun/tracking/view.py), so a
  kill never leaves a tracker holding an epoch that the resume would redo.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from cbrun.state.files import CapturedState, write_state


class StateWriter:
    """background=False writes on the training thread."""

    def __init__(self, background: bool = True):
        self.background = background
        self.written: int | None = None  # epochs done of the last state written, run.json too
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._closed = False

    def save(self, run_dir: Path, state: CapturedState, then: Callable[[], None]) -> None:
        """Write `state`, then call `then` (run.json), on the writer thread."""
        self.wait()
        if not self.background:
            self._write(run_dir, state, then)
            self.wait()
            return
        self._thread = threading.Thread(target=self._write, args=(run_dir, state, then),
                                        name=f"cbrun-state-{state.epochs_done}")
        self._thread.start()

    def _write(self, run_dir: Path, state: CapturedState, then: Callable[[], None]) -> None:
        try:
            write_state(run_dir, state)
            with self._lock:
                # Once the run's end is being recorded, run.json is the main thread's.
                if not self._closed:
                    then()
            self.written = max(state.epochs_done, self.written or 0)
        except BaseException as exc:  # noqa: BLE001 - raised on the training thread by wait()
            self._error = exc

    def wait(self) -> None:
        """Until the write in flight is done; its failure is raised here."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise error

    def settle(self) -> None:
        """Until the write in flight is done, keeping its failure for `wait` to raise (a run
        already ending for another reason records what is on disk)."""
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        """The run ends: wait for the last write; run.json is no longer the writer's."""
        try:
            self.wait()
        finally:
            with self._lock:
                self._closed = True
