"""The training process's end of the tracking process (cbrun/tracking/child.py).

`put` hands an item to a bounded queue and returns at once: a feeder thread writes it to
the tracking process, a reader thread collects the answers, and the training thread reads
them when it next looks (`answers`), so nothing the trackers do, or fail to do, holds
training. A full queue (the tracking process has fallen QUEUE_ITEMS behind) refuses the
item, and the view lists it as unsent. At the run's end `wait` waits for what is still in
flight for as long as the tracking process keeps answering, and at most STALL_SECONDS
without an answer.

The process is started for a run before TensorFlow's import (`started`, from
run/segment.py), so that mlflow's import and the store's set-up run beside it; the view
takes it, or starts one then (`sender_for`).
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import cbrun

QUEUE_ITEMS = 1000  # ~1 kB an epoch's item: a tracker stuck for 1000 epochs holds ~1 MB
# A tracker that answers nothing for this long at the run's end is left: MLflow's own
# bound on an HTTP request is 20 s, 3 tries (mlflow_sink.HTTP_DEFAULTS).
STALL_SECONDS = 90.0
# The tracking process's own output (its stderr: a crash's traceback, a fatal signal's
# stack, what MLflow or W&B print), kept in the run directory so that "it ended" can say why.
LOG_FILE = "tracking.log"
# A line that says what went wrong: an exception's ("ValueError: ..."), a fatal error's.
_ERROR_LINE = re.compile(r"^(Fatal Python error: |[A-Za-z_][\w.]*: )")


class Sender:
    def __init__(self, config: Any, run_dir: Path, config_dir: Path | None,
                 states: dict[str, Any]):
        self.run_dir = run_dir
        self.queue_items = QUEUE_ITEMS
        self._queue: queue.Queue = queue.Queue(maxsize=self.queue_items)
        self._answers: deque = deque()
        self._heard = threading.Condition()
        self._done = 0  # the last item the tracking process finished
        self._heard_count = 0  # answers so far: the process is still working
        self._seq = 0
        self.gone: str | None = None  # why the tracking process can take nothing more
        commands_read, commands_write = os.pipe()
        replies_read, replies_write = os.pipe()
        # The tracking process imports the cbrun this process runs (a checkout on sys.path
        # rather than the installed one).
        home = str(Path(cbrun.__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [home, *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.log_path = run_dir / LOG_FILE
        try:  # appended to: a resume keeps what an earlier process said
            log = self.log_path.open("ab")
        except OSError:
            log = None
        self._log_from = log.tell() if log is not None else 0
        try:
            # -X faulthandler: a fatal signal (a crash in MLflow's or SQLite's C code) leaves
            # the Python stack in the log too.
            self.process = subprocess.Popen(
                [sys.executable, "-X", "faulthandler", "-m", "cbrun.tracking.child",
                 str(commands_read), str(replies_write)],
                pass_fds=(commands_read, replies_write), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log or subprocess.DEVNULL,
                env=env, start_new_session=True)  # Ctrl-C is the training process's
        finally:
            os.close(commands_read)
            os.close(replies_write)
            if log is not None:
                log.close()
        self._out = Connection(commands_write, readable=False)
        self._in = Connection(replies_read, writable=False)
        self._queue.put(("setup", config, run_dir, config_dir, states))
        threading.Thread(target=self._feed, name="cbrun-tracking-feed", daemon=True).start()
        threading.Thread(target=self._read, name="cbrun-tracking-read", daemon=True).start()

    def put(self, op: str, label: str | int | None, *args: Any) -> int | None:
        """Queues one item for every tracker; its number, or None when the queue is full
        or the tracking process is gone (the item is not sent)."""
        if self.gone is not None:
            return None
        try:
            self._queue.put_nowait((self._seq + 1, op, label, args))
        except queue.Full:
            return None
        self._seq += 1
        return self._seq

    def answers(self) -> list[tuple]:
        """What the tracking process answered since the last call; never waits."""
        out = []
        while self._answers:
            out.append(self._answers.popleft())
        return out

    def wait(self, stall: float = STALL_SECONDS) -> bool:
        """Until every item queued so far is done, the process is gone, or it answered
        nothing for `stall` seconds; True when everything was done."""
        with self._heard:
            heard = self._heard_count
            last = time.monotonic()
            while self._done < self._seq and self.gone is None:
                self._heard.wait(timeout=max(0.0, last + stall - time.monotonic()))
                if self._heard_count != heard:
                    heard, last = self._heard_count, time.monotonic()
                elif time.monotonic() >= last + stall:
                    return False
            return self._done >= self._seq

    def close(self, stall: float = STALL_SECONDS) -> None:
        """Ends the tracking process: once it is done with its set-up when nothing is in
        flight (a store's tables are not cut halfway), at once when it is stuck (the caller
        waited for it already)."""
        if self.process.poll() is None and self.gone is None and self._done >= self._seq:
            try:
                self._queue.put_nowait(("close",))
                self.process.wait(timeout=stall)
            except (queue.Full, subprocess.TimeoutExpired):
                pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._ended("closed")
        try:
            self._queue.put_nowait(("close",))  # the feeder's last item, wherever it goes
        except queue.Full:
            pass  # the feeder is held in a write that the process's end breaks
        try:  # a log with nothing in it is no news
            if self.log_path.stat().st_size == 0:
                self.log_path.unlink()
        except OSError:
            pass

    # ---------------------------------------------------------------- the two threads

    def _feed(self) -> None:
        try:
            while True:
                item = self._queue.get()
                self._out.send(item)
                if item[0] == "close":
                    return
        except (OSError, ValueError):
            return  # the process is gone: the reader says why
        finally:
            self._out.close()

    def _read(self) -> None:
        try:
            while True:
                answer = self._in.recv()
                with self._heard:
                    if answer[0] == "done":
                        self._done = answer[1]
                    elif answer[0] == "crashed":
                        self.gone = f"the tracking process could not start: {answer[1]}"
                    self._answers.append(answer)
                    self._heard_count += 1
                    self._heard.notify_all()
        except (EOFError, OSError, ValueError):
            try:  # its end closed the pipe: its exit code and last words follow at once
                code = self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                code = None
            self._ended("the tracking process ended"
                        + ("" if code is None else f" (exit code {code})") + self._last_words())
        finally:
            self._in.close()

    def _last_words(self) -> str:
        """What the process wrote last in its log, for the line that says it ended."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_from)
                lines = [line.strip() for line in
                         log.read().decode("utf-8", "replace").splitlines() if line.strip()]
        except OSError:
            return ""
        if not lines:
            return ""
        said = next((line for line in reversed(lines) if _ERROR_LINE.match(line)), lines[-1])
        return f": {said[:300]} (its output is in {self.log_path})"

    def _ended(self, why: str) -> None:
        with self._heard:
            self.gone = self.gone or why
            self._heard.notify_all()


# The tracking process of each run directory whose segment is running (None: not yet).
_STARTED: dict[Path, Sender | None] = {}


@contextmanager
def started(config: Any, run_dir: Path, config_dir: Path | None, states: dict[str, Any]):
    """A tracking process for the run while its segment runs (started now, when the run is
    tracked), ended with the segment whatever became of the view."""
    _STARTED[run_dir] = (Sender(config, run_dir, config_dir, states)
                         if config is not None and (config.mlflow or config.wandb) else None)
    try:
        yield
    finally:
        sender = _STARTED.pop(run_dir, None)
        if sender is not None:
            sender.close()


def sender_for(config: Any, run_dir: Path, config_dir: Path | None,
               states: dict[str, Any]) -> Sender:
    """The run's tracking process: the one started with its segment, or a new one."""
    sender = _STARTED.get(run_dir)
    if sender is None:
        sender = Sender(config, run_dir, config_dir, states)
        if run_dir in _STARTED:
            _STARTED[run_dir] = sender
    return sender
