"""Runs one training segment (a `train` or a `resume` process) and records how it ended.

Lower floor: TensorFlow is imported inside, within the same handlers as the training
itself, so a Ctrl-C during the ~4 s import is an interruption like any other.

Exit codes: 0 when the run completed or stopped early, 1 when it failed, 130 after Ctrl-C,
143 after SIGTERM. Either way run.json says what happened, and an interrupted run says how
to continue it.
"""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import signal
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console

from cbrun.errors import EXIT_SIGINT, EXIT_SIGTERM, CbrunError, ConfigError
from cbrun.record import RunRecord, StopReason
from cbrun.resume import newest_state_best, newest_state_epoch
from cbrun.summary import summary_table


class Terminated(BaseException):
    """SIGTERM, turned into an exception so the run unwinds like Ctrl-C does."""


INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def interrupts_deferred(reraise: bool = True) -> Iterator[list[int]]:
    """Ctrl-C and SIGTERM wait until the block is done (a state write, a run directory being
    set up), then arrive as usual. Yields the list of held signals; with reraise=False the
    caller re-delivers them where it can record them (see run_segment's `pending`).

    A Python-level hold rather than a thread signal mask: TensorFlow's threads would take a
    masked signal, and Python runs its handler in the main thread all the same."""
    pending: list[int] = []

    def hold(signum, frame):
        pending.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in INTERRUPTS}
    try:
        yield pending
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if pending and reraise:
            signal.raise_signal(pending[0])


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt and SIGTERM raises Terminated, whatever handlers an
    enclosing block (such as interrupts_deferred) had put in place."""
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
                train: Callable[[], Any], pending: list[int] | None = None) -> int:
    """`train()` imports the upper floor and trains; it returns a session Outcome.
    `pending`: interrupts held while the run was being set up, delivered here."""
    run_dir = record.run_dir
    record.begin_segment(kind, first_epoch, command)
    try:
        with interrupts_raise():
            if pending:
                signal.raise_signal(pending[0])
            from cbrun.train.tfimport import import_tensorflow

            import_tensorflow(debug)
            outcome = train()
    except KeyboardInterrupt:
        return _interrupted(record, "Ctrl-C", EXIT_SIGINT)
    except Terminated:
        return _interrupted(record, "SIGTERM", EXIT_SIGTERM)
    except ConfigError as exc:
        if fresh_dir and newest_state_epoch(run_dir) == 0:
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
                      error=outcome.note if outcome.status == "failed" else None,
                      stopped_early_at=outcome.stopped_early_at,
                      stop_reason=outcome.stop_reason, stop_note=outcome.note)
    except OSError as exc:
        full = _out_of_space(exc)
        if full is None:
            raise
        return _stopped_by_full_disk(record, full)
    console.print(summary_table(record.file, run_dir))
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


def _interrupted(record: RunRecord, what: str, code: int) -> int:
    # What is on disk is what resume will use: say that, not what memory had reached.
    done = newest_state_epoch(record.run_dir)
    record.interrupted(done, newest_state_best(record.run_dir), what)
    hint = f"cbrun resume {shlex.quote(str(record.run_dir))}"
    # stderr, and even with --quiet: the way back must never be hidden.
    click.echo(f"\ninterrupted by {what} after {done} complete epoch{'s' if done != 1 else ''}"
               f"; continue exactly where it stopped with:\n  {hint}", err=True)
    return code
