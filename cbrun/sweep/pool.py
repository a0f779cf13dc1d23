"""The sweep driver's warm workers (cbrun/sweep/worker.py): a process per `--jobs` slot that
imports TensorFlow once and trains the trials it is given one after another, and the
configs that must still train in a process of their own (`why_fresh`).

A worker is started when a trial first needs one, kept while its trials end with exit 0,
and ended (its stdin closed) after any other end: a failed, interrupted or crashed trial
costs a worker's start, never the next trial's isolation. A worker found gone before
it took a trial is replaced, and the trial given to the new one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config's modules load while the first worker starts, not before
    from cbrun.config.root import RunConfig

# The trial types that run the user's code, imported from the config's folder: a module's
# own state (a counter, a cache, a registry) would carry from one trial to the next.
_USER_CODE_CALLBACKS = ("Custom", "LambdaCallback")


def why_fresh(config: RunConfig) -> str | None:
    """Why a trial of `config` cannot share a warm worker's process, or None when it can."""
    if config.backend != "tensorflow":
        return (f"backend: {config.backend} (the workers have Keras on TensorFlow, and Keras "
                "chooses its backend once per process)")
    if config.distribute.type != "none":
        return (f"distribute: {config.distribute.type} (TensorFlow sets up its devices once "
                "per process)")
    code = [f"callbacks {spec.type}" for spec in config.callbacks
            if spec.type in _USER_CODE_CALLBACKS]
    if config.model.kind == "factory":
        code.append(f"model.factory {config.model.factory}")
    if config.data.source == "python":
        code.append(f"data.function {config.data.function}")
    if code:
        return (f"the config runs your code ({', '.join(code)}), whose modules would keep "
                "their state from one trial to the next")
    return None


class Worker:
    """One warm worker process, talked to through its stdin and stdout."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cbrun.sweep.worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=dict(os.environ),
            text=True, encoding="utf-8", bufsize=1)
        self.trials = 0

    def run(self, args: list[str], env: dict[str, str], log: Path) -> int | None:
        """The trial's exit code; None when this worker was gone before it took the trial.
        A worker that dies during a trial gives its own exit status (a signal's -N)."""
        request = json.dumps({"args": args, "env": env, "log": str(log)})
        try:
            self.proc.stdin.write(request + "\n")
            self.proc.stdin.flush()
        except OSError:  # BrokenPipeError: it ended while idle
            return None
        if not self.proc.stdout.readline():
            return None
        self.trials += 1
        answer = self.proc.stdout.readline()
        if not answer:
            return self.proc.wait()
        return int(json.loads(answer)["code"])

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()

    def close(self, timeout: float) -> None:
        """Its stdin closed, the worker ends; one that does not is killed."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


class Pool:
    """The idle workers; each trial thread takes one (or starts one) and gives it back."""

    def __init__(self, start: int = 0) -> None:
        """start: workers started at once, whose TensorFlow import then overlaps the
        sweep's own start (the sweep file read and checked, Optuna, its storage, the
        study)."""
        self.lock = threading.Lock()
        self.idle: list[Worker] = [Worker() for _ in range(start)]
        self.closed = False

    def start(self, count: int) -> None:
        """Workers started until `count` wait for a trial."""
        with self.lock:
            missing = count - len(self.idle)
        for _ in range(missing):
            worker = Worker()
            with self.lock:
                self.idle.append(worker)

    def drop_unused(self) -> None:
        """The workers never given a trial ended (the sweep's trials will not use them)."""
        with self.lock:
            unused = [w for w in self.idle if not w.trials]
            self.idle = [w for w in self.idle if w.trials]
        for worker in unused:
            worker.kill()

    def run(self, args: list[str], env: dict[str, str], log: Path,
            started: Callable[[subprocess.Popen], None]) -> int | None:
        """The trial's exit code; None when workers kept ending before they took it.
        `started(proc)`: the worker process that runs it, told before the trial is sent
        (the driver stops it on Ctrl-C)."""
        for _ in range(3):
            worker = self._take()
            started(worker.proc)
            code = worker.run(args, env, log)
            if code is None:  # gone before it took the trial: another takes it
                worker.close(timeout=5)
                continue
            if code == 0 and self._give_back(worker):
                return code
            # After any other end the trial may have left anything behind in the process.
            worker.close(timeout=60)
            return code
        return None

    def _take(self) -> Worker:
        with self.lock:
            while self.idle:
                worker = self.idle.pop()
                if worker.alive:
                    return worker
                worker.close(timeout=5)
        return Worker()

    def _give_back(self, worker: Worker) -> bool:
        with self.lock:
            if self.closed or not worker.alive:
                return False
            self.idle.append(worker)
            return True

    def close(self) -> None:
        with self.lock:
            self.closed = True
            workers, self.idle = self.idle, []
        for worker in workers:
            if worker.trials:
                worker.close(timeout=30)
            else:  # never given a trial (still importing, perhaps): nothing to end well
                worker.kill()
