"""A warm sweep worker: one process that trains trial after trial, TensorFlow imported once.

`python -m cbrun.sweep.worker`, started by the sweep's driver (cbrun/sweep/pool.py), one
per `--jobs` slot. It reads requests on its stdin, a JSON line each: a trial's `cbrun`
arguments (`train ...` or `resume ...`), its environment variables and its log file. It
answers on its stdout, a JSON line each: `{"took": pid}` when it takes a request,
`{"code": N}` when the trial has ended (N: the exit code `cbrun` would have given).

Each trial is what the `cbrun` command would do in a process of its own (`cli._run`, as
`cbrun train` runs it): its own run directory, its output (file descriptors 1 and 2, the
C++ side's too) in its log file, its environment variables (taken back after), a Keras
session of its own (engine/session.py clears it and sets the seeds), and after it every
setting Keras keeps per process put back as the import found it (engine/worker_state.py).
A trial that does not end with exit 0 (failed, interrupted, crashed) may leave anything
behind: the driver then closes the worker's stdin, so it ends, and starts a fresh one for
the next trial.
After a trial that ended well the worker answers first and makes itself ready after,
while the driver tells the study; one that cannot make itself ready exits (its message in
the trial's log), and the driver's next request goes to a new worker.

The worker ends when its stdin closes (the driver is done, or gone). Its stdin and stdout
are for the driver alone: the trials read /dev/null and write to their log files.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any


def main() -> None:
    from cbrun.cli import _own_temp_folder
    from cbrun.process import set_whole_process

    # TensorFlow imported as the command imports it (engine/tfimport.py: its objects frozen
    # out of the collector's sight); not the command's later freezes, which would keep
    # each trial's model frozen, never freed, for the worker's life.
    set_whole_process(True)
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    _point(0, os.devnull, os.O_RDONLY)
    _point(1, os.devnull, os.O_WRONLY)
    scratch = None
    code, broken = 0, False
    try:
        settings = _warm_up()
        set_whole_process(False)
        # Made once warm: a worker never given a trial is killed, perhaps mid-import.
        scratch = _own_temp_folder()
        for line in requests:
            _answer(answers, took=os.getpid())
            told: list[int] = []
            try:
                code, broken = trial(json.loads(line), settings,
                                     functools.partial(_tell, answers, told))
            except Exception:  # noqa: BLE001 - its log could not be opened, say: it failed
                code, broken = 1, True
            if not told:
                _answer(answers, code=code)
            if broken:
                break
    except KeyboardInterrupt:  # Ctrl-C between trials: the sweep is stopping
        code = 130
    except BrokenPipeError:  # the driver is gone
        code = 1
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    # As `cbrun` itself ends (cli.main): no interpreter teardown around TensorFlow's threads.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if code == 0 and not broken else 1)


def _warm_up() -> dict[str, Any]:
    from cbrun.engine.tfimport import import_tensorflow

    import_tensorflow()
    from cbrun.engine.worker_state import keras_settings

    return keras_settings()


def trial(request: dict[str, Any], settings: dict[str, Any],
          tell: Callable[[int], None]) -> tuple[int, bool]:
    """One trial, as `cbrun ARGS` in a process of its own: (its exit code, whether this
    worker failed to make itself ready for another: then it ends). After exit 0 the
    settings are put back; `tell(code)` answers the driver before that, so the worker
    makes itself ready while the driver tells the study. After any other end the driver
    closes this worker's stdin (pool.py): it takes no other trial."""
    from cbrun.cli import _run

    with open(request["log"], "ab") as log, _output_to(log.fileno()), \
            _environment(request["env"]):
        try:
            code = _run(list(request["args"]))
        except BaseException:  # noqa: BLE001 - as the command would show it: exit 1
            traceback.print_exc()
            code = 1
        tell(code)
        if code != 0:
            return code, False  # nothing to make ready: the driver ends this worker
        try:
            from cbrun.engine.worker_state import put_back

            put_back(settings)
        except Exception:  # noqa: BLE001 - the trial is done; this worker is not fit
            print("the sweep worker could not make itself ready for another trial:",
                  file=sys.stderr)
            traceback.print_exc()
            return code, True
    return code, False


def _tell(answers, told: list[int], code: int) -> None:
    told.append(code)
    _answer(answers, code=code)


def _answer(answers, **fields: Any) -> None:
    answers.write(json.dumps(fields) + "\n")


def _point(fd: int, path: str, flags: int) -> None:
    target = os.open(path, flags)
    os.dup2(target, fd)
    os.close(target)


@contextmanager
def _output_to(fd: int):
    """File descriptors 1 and 2 (Python's and the C++ side's output) into `fd`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


@contextmanager
def _environment(env: dict[str, str]):
    before = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


if __name__ == "__main__":
    main()
