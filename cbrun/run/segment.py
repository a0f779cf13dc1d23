"""Runs one training segment (a `train` or a `resume` process) and records how it ended.

Lower floor: TensorFlow is imported inside, within the same handlers as the training
itself, so a Ctrl-C during the ~4 s import is an interruption like any other.

Exit codes: 0 when the run completed or stopped early, 1 when it failed, 130 after Ctrl-C,
75 (EX_TEMPFAIL) after SIGTERM, SIGUSR1 or the time limit (fit.max_time): what a scheduler
reads as "requeue me". Either way run.json says what happened, and an interrupted run says
how to continue it.

Signals. A Ctrl-C or SIGTERM handler only records the signal: a Python handler runs at
whatever bytecode the main thread is at, and an exception raised there may unwind through
TensorFlow's C++ (an import, a tracing, a pybind11 callback), which then crashes or reports
a mismatched error. The run stops at the next safe point instead (`stop_point`): between
the steps of setting up, at every batch and epoch boundary, where the exception
`Interrupted` unwinds plain Python. A second signal, while the first waits for its safe
point, ends the process at once from a watcher thread, even inside a long compiled step:
run.json is marked interrupted after the newest whole state, and the process exits with
os._exit, which neither runs Python code in the main thread nor tears down the interpreter
around TensorFlow's threads.
"""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from cbrun.errors import EXIT_REQUEUE, EXIT_SIGINT, CbrunError, ConfigError
from cbrun.run.record import SAVE_LOCK, RunRecord, StopReason
from cbrun.run.summary import summary_table
from cbrun.state.files import newest_state_best, newest_state_epoch, newest_state_position


class Terminated(BaseException):
    """SIGTERM, turned into an exception (`interrupts_raise`: processes without TensorFlow,
    such as the sweep driver)."""


class Interrupted(BaseException):
    """A recorded Ctrl-C, SIGTERM or SIGUSR1, or the time limit, raised at a safe point
    (`stop_point`). `signum` 0: the time limit."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


TIME_LIMIT = 0  # the `signum` of Interrupted when fit.max_time ran out
# SIGTERM is what a scheduler sends before it stops or preempts a job; SLURM sends SIGUSR1
# (or any signal) ahead of a job's time limit with --signal. Both save the state at the
# next batch and exit with EXIT_REQUEUE; Ctrl-C is a person stopping the run.
INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
_NAMES = {signal.SIGINT: ("Ctrl-C", EXIT_SIGINT), signal.SIGTERM: ("SIGTERM", EXIT_REQUEUE),
          signal.SIGUSR1: ("SIGUSR1", EXIT_REQUEUE), TIME_LIMIT: ("the time limit", EXIT_REQUEUE)}

# The interrupts received while `interrupts_recorded` is in place, first first.
_requested: list[int] = []
# What a second signal does before the process exits (run_segment sets it: mark the run).
_on_force: list[Callable[[int], str]] = []
_depth: list[bool] = []  # non-empty while interrupts_recorded is in place


# time.monotonic() past which the run stops (fit.max_time), or None.
_deadline: list[float] = []


def limit_time(seconds: float | None) -> None:
    """This process trains for at most `seconds` from now (None: no limit)."""
    _deadline.clear()
    if seconds is not None:
        _deadline.append(time.monotonic() + seconds)


def stop_reason() -> int | None:
    """This process's reason to stop (a signal number; TIME_LIMIT), or None."""
    if _requested:
        return _requested[0]
    if _deadline and time.monotonic() >= _deadline[0]:
        return TIME_LIMIT
    return None


def stop_point() -> None:
    """Raise Interrupted if a Ctrl-C, SIGTERM or SIGUSR1 has arrived or the time limit has
    passed. Called only where unwinding is safe: between setup steps and from the SafeStop
    callback at batch and epoch boundaries."""
    reason = stop_reason()
    if reason is not None:
        raise Interrupted(reason)


def agreed_stop_point(agree: Callable[[int | None], int | None]) -> None:
    """`stop_point` for a job of several processes, at epoch ends: `agree` tells the others
    this process's reason to stop (or None) and returns the job's; all stop, or none, so
    that no process waits for the others in a batch they never start."""
    reason = agree(stop_reason())
    if reason is not None:
        raise Interrupted(reason)


def stopping() -> bool:
    """Whether the next `stop_point` stops the run (the StateKeeper saves its state first)."""
    return stop_reason() is not None


def pending_interrupt() -> str | None:
    """The name of a Ctrl-C or SIGTERM recorded and not acted on ("Ctrl-C"), else None."""
    return _NAMES[_requested[0]][0] if _requested else None


@contextmanager
def interrupts_recorded() -> Iterator[None]:
    """Ctrl-C and SIGTERM are recorded for `stop_point`; a second one ends the process at
    once (see the module docstring)."""
    if _depth or threading.current_thread() is not threading.main_thread():
        # Already in place (the command holds it; run_segment asks again), or a Python-API
        # call from another thread: signals reach only the main thread, which keeps its own
        # handlers, and Python refuses to install one elsewhere.
        yield
        return

    def record(signum, frame):
        _requested.append(signum)

    _requested.clear()
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous = {sig: signal.signal(sig, record) for sig in INTERRUPTS}
    # The C-level handler writes each signal's number here the moment it arrives, while the
    # Python handler waits for the main thread to run bytecode again.
    old_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    # The terminal's stderr as it is now: the TensorFlow import points fd 2 at /dev/null.
    stderr = os.dup(2)
    watcher = threading.Thread(target=_watch, args=(read_end, stderr), daemon=True,
                               name="cbrun-interrupts")
    watcher.start()
    _depth.append(True)
    try:
        yield
    finally:
        _depth.clear()
        signal.set_wakeup_fd(old_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.write(write_end, b"\0")  # wakes the watcher to end it
        watcher.join()
        for fd in (read_end, write_end, stderr):
            os.close(fd)


def _watch(read_end: int, stderr: int) -> None:
    seen = 0
    while True:
        for signum in os.read(read_end, 64):
            if signum == 0:
                return
            if signum in _NAMES:
                seen += 1
                if seen >= 2:
                    _force_exit(signum, stderr)


def _force_exit(signum: int, stderr: int) -> None:
    what, code = _NAMES[signum]
    line = f"\nsecond {what}: stopped at once"
    for hook in _on_force:
        try:
            line = hook(signum)
        except BaseException as exc:  # noqa: BLE001 - exiting anyway; say why it is unrecorded
            line += f" (run.json not updated: {exc})"
    os.write(stderr, (line + "\n").encode())
    os._exit(code)


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt and SIGTERM raises Terminated, whatever handlers an
    enclosing block had put in place. Only for processes that never load TensorFlow."""
    def terminated(signum, frame):
        raise Terminated()

    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
                signal.SIGTERM: signal.signal(signal.SIGTERM, terminated)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_segment(record: RunRecord, *, kind: str, first_epoch: int, command: list[str],
                console: Console, debug: bool, fresh_dir: bool,
                train: Callable[[], Any], summary: bool = True,
                backend: str = "tensorflow", tracking: Any = None) -> int:
    """`train()` imports the upper floor and trains; it returns a session Outcome. A signal
    that arrived earlier (the caller holds `interrupts_recorded` from before the run directory
    exists) stops it at the first `stop_point`. `tracking` (the config's section): its
    process starts now, beside TensorFlow's import (cbrun/tracking/sender.py)."""
    from cbrun.tracking.sender import started

    with interrupts_recorded():
        record.begin_segment(kind, first_epoch, command)
        _on_force.append(lambda signum: _force_record(record.run_dir, signum))
        try:
            with started(tracking, record.run_dir, record.file.config_dir and Path(
                    record.file.config_dir), _tracked_states(record, tracking)):
                return _run(record, console, debug, fresh_dir, train, summary, backend)
        finally:
            _on_force.clear()
            limit_time(None)


def _tracked_states(record: RunRecord, tracking: Any) -> dict[str, Any]:
    return {name: record.tracked(name) for name in ("mlflow", "wandb")
            if tracking is not None and getattr(tracking, name) is not None}


def _run(record: RunRecord, console: Console, debug: bool, fresh_dir: bool,
         train: Callable[[], Any], summary: bool = True, backend: str = "tensorflow") -> int:
    run_dir = record.run_dir
    try:
        stop_point()
        from cbrun.engine.tfimport import import_tensorflow

        import_tensorflow(debug, training=True, backend=backend)
        stop_point()
        outcome = train()
    except Interrupted as exc:
        return _interrupted(record, *_NAMES[exc.signum])
    except ConfigError as exc:
        if fresh_dir and newest_state_position(run_dir) == (0, 0):
            # Refused before the first epoch: nothing was trained, so nothing is kept.
            try:
                shutil.rmtree(run_dir)
                click.echo(f"nothing was trained; removed {run_dir}", err=True)
            except OSError as rm_error:
                record.finish("failed", error=str(exc))
                click.echo(f"nothing was trained, but {run_dir} could not be removed "
                           f"({rm_error})", err=True)
        else:
            record.finish("failed", error=str(exc))
        raise
    except CbrunError as exc:
        _failed(record, str(exc))
        raise
    except Exception as exc:  # noqa: BLE001 - recorded, shown with its traceback, exit 1
        full = _out_of_space(exc)
        if full is not None:
            return _stopped_by_full_disk(record, full)
        _failed(record, f"{type(exc).__name__}: {exc}"[:2000])
        traceback.print_exc()
        click.echo(f"run failed: {run_dir} (run.json has the error)", err=True)
        return 1
    try:
        record.finish(outcome.status,
                      error=outcome.note if outcome.status == "failed" else outcome.test_error,
                      stopped_early_at=outcome.stopped_early_at,
                      stop_reason=outcome.stop_reason, stop_note=outcome.note)
    except OSError as exc:
        full = _out_of_space(exc)
        if full is None:
            raise
        return _stopped_by_full_disk(record, full)
    # summary: False for a fast dev run, whose folder is about to go and whose one batch
    # says nothing about the baseline.
    if summary:
        console.print(summary_table(record.file, run_dir))
    verdict = summary and record.file.baseline and record.file.baseline.verdict(
        record.file.monitor, record.file.best)
    if verdict:
        click.echo(f"warning: {verdict}", err=True)
    if outcome.test_error:  # trained and saved, but not all that was asked for was done
        click.echo(f"error: {outcome.test_error}", err=True)
        return 1
    return 0 if outcome.status in ("completed", "stopped_early", "pruned") else 1


# A write that found no room: the disk, a quota, or a file size limit (RLIMIT_FSIZE).
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _out_of_space(exc: BaseException) -> OSError | None:
    """The full-disk error behind `exc` (Keras and NumPy may wrap it), or None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _NO_SPACE:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _settle(record: RunRecord) -> int:
    """run.json never claims more than the newest valid state holds (the epoch whose state
    write failed is not done, whatever memory had reached)."""
    done = newest_state_epoch(record.run_dir)
    if record.epochs_done > done:
        record.epoch_done(done, newest_state_best(record.run_dir))
    return min(done, record.epochs_done)


def _failed(record: RunRecord, error: str) -> None:
    _settle(record)
    record.finish("failed", error=error)


def _stopped_by_full_disk(record: RunRecord, exc: OSError) -> int:
    """One line, run.json `failed` with the reason when it can still be written, no debris
    (the state and run.json writers remove their temporary files themselves)."""
    what = f"{os.strerror(exc.errno)} while writing {exc.filename or 'into the run'}"
    done = _settle(record)
    try:
        record.finish("failed", error=what, stop_reason=StopReason.NO_SPACE,
                      stop_note=f"{what} after epoch {done}")
        recorded = "run.json says failed"
    except OSError:
        recorded = ("run.json could not be updated either; resume sees that this process "
                    "is gone")
    hint = f"cbrun resume {shlex.quote(str(record.run_dir))}"
    click.echo(f"error: {what}; the run holds {done} complete epoch"
               f"{'s' if done != 1 else ''} ({recorded}); free space, then continue with: "
               f"{hint}", err=True)
    return 1


def _force_record(run_dir, signum: int) -> str:
    """A second signal, from the watcher thread: run.json interrupted after the newest whole
    state (read from disk: the main thread may be halfway through changing the record in
    memory). SAVE_LOCK is kept until the process exits, so no later write of the main thread
    replaces this one."""
    what, _code = _NAMES[signum]
    SAVE_LOCK.acquire(timeout=10)
    done = newest_state_epoch(run_dir)
    RunRecord.load(run_dir).interrupted(done, newest_state_best(run_dir),
                                        f"{what} (a second one: stopped at once)")
    return (f"\nsecond {what}: stopped at once after {done} complete epoch"
            f"{'s' if done != 1 else ''}; continue exactly where it stopped with:\n"
            f"  cbrun resume {shlex.quote(str(run_dir))}")


def record_peer_failure(run_dir, what: str) -> None:
    """Another process of the job failed (cbrun/engine/peers.py, from its watcher thread,
    while this one's main thread may be blocked in a collective): run.json failed after the
    newest whole state, with `what`, so that resume continues from there."""
    SAVE_LOCK.acquire(timeout=10)  # kept: the process ends right after
    done = newest_state_epoch(run_dir)
    record = RunRecord.load(run_dir)
    record.epoch_done(done, newest_state_best(run_dir))
    record.finish("failed", error=what)


def where(position: tuple[int, int]) -> str:
    """'3 complete epochs', or '3 complete epochs and 120 batches of the 4th'."""
    done, batches = position
    text = f"{done} complete epoch{'s' if done != 1 else ''}"
    return text + (f" and {batches} batch{'es' if batches != 1 else ''} of epoch {done + 1}"
                   if batches else "")


def _interrupted(record: RunRecord, what: str, code: int) -> int:
    # What is on disk is what resume will use: say that, not what memory had reached.
    position = newest_state_position(record.run_dir)
    record.interrupted(position[0], newest_state_best(record.run_dir), what)
    hint = f"cbrun resume {shlex.quote(str(record.run_dir))}"
    # stderr, and even with --quiet: the way back must never be hidden.
    click.echo(f"\ninterrupted by {what} after {where(position)}; continue exactly where it "
               f"stopped with:\n  {hint}", err=True)
    return code
