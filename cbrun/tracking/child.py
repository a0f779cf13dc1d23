"""The tracking process: one run's sinks (MLflow, W&B), fed by its training process
through cbrun/tracking/sender.py, so that nothing MLflow or W&B does holds training.

It starts before the training process imports TensorFlow, imports mlflow or wandb and sets
the store up meanwhile (mlflow's import and an SQLite store's set-up are ~4 s of CPU, which
runs here on another core), then takes the items the TrackingView queues, in order, one
tracker after the other, and answers for each what became of it. A tracker that fails is
left alone from then on, as in one process before. Lower floor: never TensorFlow.

The training process is its only master: Ctrl-C and SIGTERM are for that one (which then
sends the end status here), and when it is gone (killed) this process sends nothing more
and ends, as the training process itself would have.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from cbrun.tracking.stores import StoreUnavailable

# How long an epoch waits here for the next before it is sent: the epochs of a fast run go
# in one MLflow transaction rather than one each (10-20 ms of processor time apiece, on the
# core training would use). The run's end, or any other item, ends the wait at once.
LINGER_SECONDS = 0.5
# And longer where sending is dear: after a send that took c seconds of this process's
# processor time, the next waits until c / SEND_SHARE has passed, so that sending epochs
# takes at most this share of a core however short the epochs, while one send costs
# under SEND_SHARE * MAX_LINGER_SECONDS (an SQLite store's
# log_batch is ~13 ms of it, whatever the epochs in it: 8 ms an epoch of 0.17 s before,
# 2 epochs a send). At most MAX_LINGER_SECONDS: a store's page lags the run no more.
SEND_SHARE = 0.01
MAX_LINGER_SECONDS = 5.0


def main(argv: list[str]) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    # What MLflow leaves in the temporary folder (its store's lock file, log_text's file)
    # goes where the process's end removes it, as the training process does (cli.py).
    try:
        scratch = tempfile.mkdtemp(prefix="cbrun-tracking-")
    except OSError:
        scratch = None
    else:
        tempfile.tempdir = scratch
    try:
        _serve(argv)
    except _Gone:
        pass
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    os._exit(0)  # no interpreter teardown: W&B's and MLflow's exit hooks have nothing left


class _Gone(Exception):
    """The training process is gone (killed): nothing more is sent."""


def _serve(argv: list[str]) -> None:
    commands = Connection(int(argv[0]), writable=False)
    replies = Connection(int(argv[1]), readable=False)
    parent = os.getppid()

    def answer(message: tuple) -> None:
        try:
            replies.send(message)
        except OSError:
            raise _Gone from None

    try:
        setup = commands.recv()
    except (EOFError, OSError):
        return
    try:
        worker = Worker(*setup[1:])
        worker.warm()
    except Exception as exc:  # noqa: BLE001 - told to the training process, never raised
        answer(("crashed", f"{type(exc).__name__}: {exc}"))
        return

    def alive() -> bool:
        return os.getppid() == parent

    ahead: list[tuple] = []  # read while gathering epochs, not yet handled
    pace = Pace()
    while True:
        try:
            message = ahead.pop(0) if ahead else commands.recv()
        except (EOFError, OSError):
            return
        if os.getppid() != parent:
            return  # killed: what it queued stays unsent, as in one process
        if message[0] == "close":
            answer(("closed",))
            return
        if message[1] == "epoch":
            epochs = [message, *_gather(commands, ahead, pace.send_at(time.monotonic()))]
            if not alive():
                return
            with pace.sending():
                sent = worker.epochs([(m[0], m[3]) for m in epochs], alive)
            for seq, results in sent:
                for name, result in results:
                    answer(("result", seq, name, *result))
                answer(("done", seq))
            continue
        seq, op, _label, args = message
        for name, result in worker.handle(op, args, alive=alive):
            answer(("result", seq, name, *result))
        answer(("done", seq))


class Pace:
    """When the epochs that came are sent: LINGER_SECONDS after the first, or later when
    the last send was dear (SEND_SHARE), never more than MAX_LINGER_SECONDS after it."""

    def __init__(self, clock: Any = time.monotonic, used: Any = time.process_time):
        self.clock = clock
        self.used = used  # this process's processor time, every thread's
        self.next_at: float | None = None  # the last send's cost paid off

    def send_at(self, arrival: float) -> float:
        """When to send an epoch that came at `arrival` (with those that join it)."""
        wait = arrival + LINGER_SECONDS
        if self.next_at is not None:
            wait = max(wait, min(self.next_at, arrival + MAX_LINGER_SECONDS))
        return wait

    @contextmanager
    def sending(self) -> Iterator[None]:
        spent = self.used()
        try:
            yield
        finally:
            self.next_at = self.clock() + (self.used() - spent) / SEND_SHARE


def _gather(commands: Connection, ahead: list[tuple], deadline: float) -> list[tuple]:
    """The epochs queued behind one, and those that come until `deadline` (Pace): sent
    in one go (an MLflow log_batch, one transaction, costs about the same for one epoch as
    for ten). Anything else that comes ends the wait: the run's end never waits for it."""
    out: list[tuple] = []
    try:
        while commands.poll(max(0.0, deadline - time.monotonic())):
            message = commands.recv()
            if message[0] == "close" or message[1] != "epoch":
                ahead.append(message)
                break
            out.append(message)
    except (EOFError, OSError):
        pass  # gone: the next read says so
    return out


class _Tracked:
    def __init__(self, sink: Any, state: Any):
        self.sink = sink
        self.state = state
        self.down = False
        # Epochs the tracked run held when this process began (a resume asks the tracker).
        self.held: set[int] = set()


class Worker:
    """The sinks and whether each still works. `handle` runs one item on each tracker."""

    def __init__(self, config: Any, run_dir: Path, config_dir: Path | None,
                 states: dict[str, Any]):
        from cbrun.tracking.mlflow_sink import MlflowSink
        from cbrun.tracking.wandb_sink import WandbSink

        self.run_dir = run_dir
        self.tracked: dict[str, _Tracked] = {}
        if config.mlflow is not None:
            self.tracked["mlflow"] = _Tracked(MlflowSink(config.mlflow, run_dir, config_dir),
                                              states["mlflow"])
        if config.wandb is not None:
            self.tracked["wandb"] = _Tracked(WandbSink(config.wandb, run_dir), states["wandb"])

    def warm(self) -> None:
        """What every run pays before its first item, paid while TensorFlow imports: the
        trackers' packages, the MLflow store's set-up, the figure's plotting modules."""
        for t in self.tracked.values():
            try:
                with t.sink.quiet():
                    t.sink.warm(t.state)
            except Exception:  # noqa: BLE001, S110 - the item that needs it fails, says why
                pass
        import cbrun.plotting.figure  # noqa: F401 - drawn for the trackers at the end

    def handle(self, op: str, args: tuple, alive: Any) -> list[tuple[str, tuple]]:
        if op == "plot":  # one figure for every tracker, drawn once
            warning = _plot(self.run_dir)
            return [(name, (None, {}, warning)) for name in self.tracked][:1] if warning else []
        out = []
        for name, t in self.tracked.items():
            if not alive():
                raise _Gone
            out.append((name, self._one(t, op, args)))
        return out

    def epochs(self, items: list[tuple[int, tuple]], alive: Any
               ) -> list[tuple[int, list[tuple[str, tuple]]]]:
        """Several epochs' items ((seq, (step, metrics)), in order), sent to each tracker in
        one call; the answers per item, as `handle` gives them for one."""
        out: dict[int, list[tuple[str, tuple]]] = {seq: [] for seq, _ in items}
        for name, t in self.tracked.items():
            if not alive():
                raise _Gone
            todo = []
            for seq, args in items:
                if t.down:
                    out[seq].append((name, (False, {}, None)))
                elif args[0] in t.held:
                    out[seq].append((name, (True, {}, None)))
                else:
                    todo.append((seq, args))
            if not todo:
                continue
            first = self._one(t, "epochs", ([args for _, args in todo],))
            out[todo[0][0]].append((name, first))
            for seq, _ in todo[1:]:  # one call: all sent, or none (its failure told once)
                out[seq].append((name, (first[0], {}, None)))
        return [(seq, out[seq]) for seq, _ in items]

    def _one(self, t: _Tracked, op: str, args: tuple) -> tuple[bool | None, dict, str | None]:
        """(sent; None: nothing to send, the state's fields to record, a warning line or
        None)."""
        if op == "file" and not Path(args[0]).is_file():
            return None, {}, None  # the figure that could not be drawn (warned once)
        if t.down:
            return False, {}, None
        try:
            with t.sink.quiet():
                if op == "open":
                    t.sink.open(t.state)
                elif op == "known":
                    steps = t.sink.sent_steps()
                    t.held = steps if steps is not None else set(
                        range(1, (t.state.last_epoch or 0) + 1))
                else:
                    getattr(t.sink, _CALLS[op])(*args)
            return True, _opened(t, op), None
        except Exception as exc:  # noqa: BLE001 - any tracker failure: warned, recorded
            t.down = True
            reason = (str(exc) if isinstance(exc, StoreUnavailable) else
                      f"{type(exc).__name__}: {exc}").strip()[:1000]
            return False, {**_opened(t, op), "error": reason}, (
                f"warning: {t.sink.title} tracking failed ({reason.splitlines()[0]}); the run "
                f"goes on without it, and run.json lists what it did not get under "
                f"tracking.{t.sink.name}.unsent")


def _opened(t: _Tracked, op: str) -> dict[str, Any]:
    """What opening the tracked run wrote in its entry (its id, store, page), for run.json;
    also when it failed halfway (a W&B run keeps the id it was given)."""
    if op != "open":
        return {}
    return t.state.model_dump(exclude={"unsent", "last_epoch", "status", "error"})


_CALLS = {"params": "log_params", "epochs": "log_epochs", "summary": "log_summary",
          "text": "log_text", "file": "log_file", "end": "end"}


def _plot(run_dir: Path) -> str | None:
    """Draws log.png for the trackers; a warning line when it cannot."""
    from cbrun.errors import CbrunError
    from cbrun.plotting.figure import build_figure, save_figure
    from cbrun.plotting.inputs import all_families, load_run
    from cbrun.run.rundir import LOG_FILE
    from cbrun.tracking.view import PLOT_FILE

    try:
        run = load_run(run_dir / LOG_FILE)
        save_figure(build_figure([run], all_families([run])), run_dir / PLOT_FILE)
    except Exception as exc:  # noqa: BLE001 - a figure for the trackers never costs the run
        text = str(exc) if isinstance(exc, CbrunError) else f"{type(exc).__name__}: {exc}"
        return f"warning: could not draw {PLOT_FILE} for the trackers: {text}"
    return None


if __name__ == "__main__":
    main(sys.argv[1:])
