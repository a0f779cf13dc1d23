"""The sweep's workers: `--jobs N` threads, each asking the study for a trial and running it
as `python -m cbrun train ...` (or `cbrun resume`) in its own process.

This process never imports TensorFlow: the trials do. Every worker, here or on another
machine, talks only to the study's storage, so several share one study:

- a trial is *claimed* by the worker that asked for it (host, process and its start time,
  and the sweep directory holding its run directory, are trial attributes);
- a trial left `running` by a worker that is gone (Ctrl-C, kill -9, a reboot) is adopted by
  the next worker on that host with that sweep directory: its run directory is resumed with
  `cbrun resume`, exactly, or started if the kill came before it existed;
- a worker asks for a new trial only while fewer than `trials` are completed, pruned or
  running; two workers asking at the same instant can overshoot, and the later trial
  number gives its trial up (failed, with the attribute `cancelled`) before running it.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cbrun.errors import RunError
from cbrun.record import RunRecord, SweepTrial
from cbrun.rundir import LOG_FILE
from cbrun.segment import Terminated, interrupts_raise
from cbrun.sweep.load import Sweep
from cbrun.sweep.study import STORAGE_ENV, make_pruner, make_sampler, shown_storage

TRIALS_DIR = "trials"
LOGS_DIR = "logs"
# A worker stops asking for trials after this many failed in a row: a broken setup
# (a missing data file on this machine, no disk) would otherwise fail every trial.
MAX_FAILURES_IN_A_ROW = 3
HOST = socket.gethostname()


def process_tag(pid: int) -> str | None:
    """pid and start time: a pid alone may have been reused by an unrelated process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return str(pid)
    return f"{pid}:{stat.rsplit(')', 1)[1].split()[19]}"


MY_TAG = process_tag(os.getpid())


@dataclass
class Job:
    number: int
    params: dict[str, Any]
    adopted: bool = False


@dataclass
class Tally:
    ran: list[int] = field(default_factory=list)
    failures_in_a_row: int = 0
    stopped: str | None = None  # why this worker stopped early


def trial_run_dir(trials_dir: Path, number: int) -> Path | None:
    found = sorted(p for p in trials_dir.glob(f"*-t{number:03d}") if (p / "run.json").exists())
    return found[-1] if found else None


def trial_value(run_dir: Path, metric: str, direction: str) -> float | None:
    """The best value of `metric` over the trial's epochs (the weights EarlyStopping's
    restore_best_weights would keep)."""
    from cbrun.logs import LogError, best_epoch, read_log

    try:
        log = read_log(run_dir / LOG_FILE)
    except LogError:
        return None
    if metric not in log.columns:
        return None
    found = best_epoch(log, metric, "max" if direction == "maximize" else "min")
    return None if found is None else float(found[1])


@contextmanager
def claim_lock(sweep_dir: Path):
    """Workers of one sweep directory (several `cbrun sweep` processes) decide one at a time
    which trial is whose."""
    fd = os.open(sweep_dir / ".claim.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Driver:
    def __init__(self, sweep: Sweep, sweep_dir: Path, study, storage_url: str, jobs: int,
                 echo: Callable[[str], None]):
        import optuna

        self.optuna = optuna
        self.sweep = sweep
        self.dir = sweep_dir.resolve()
        self.trials_dir = self.dir / TRIALS_DIR
        self.study = study
        self.storage = study._storage
        self.url = storage_url
        self.jobs = jobs
        self._echo = echo
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.procs: dict[int, subprocess.Popen] = {}
        self.active: set[int] = set()
        self.tallies: list[Tally] = []
        self.errors: list[BaseException] = []
        self.interrupted_trial: int | None = None

    # ------------------------------------------------------------------ running

    def run(self) -> list[Tally]:
        self.trials_dir.mkdir(parents=True, exist_ok=True)
        (self.dir / LOGS_DIR).mkdir(exist_ok=True)
        threads = []
        for _ in range(self.jobs):
            tally = Tally()
            self.tallies.append(tally)
            thread = threading.Thread(target=self._worker, args=(tally,), daemon=True)
            thread.start()
            threads.append(thread)
        try:
            # Ctrl-C and SIGTERM reach this thread even where the shell started the sweep
            # with SIGINT ignored (a background job), as they reach each trial.
            with interrupts_raise():
                for thread in threads:
                    while thread.is_alive():
                        thread.join(0.2)
        except (KeyboardInterrupt, Terminated):
            self._stop_trials()
            raise
        if self.errors:
            raise self.errors[0]
        if self.interrupted_trial is not None:
            raise TrialInterrupted(self.interrupted_trial)
        return self.tallies

    def _stop_trials(self) -> None:
        """Ctrl-C in a terminal reaches the trials too; a signal sent to this process alone
        is passed on, so every trial ends `interrupted`, resumable."""
        self.stopping.set()
        with self.lock:
            procs = list(self.procs.values())
        for proc in procs:
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()

    def _worker(self, tally: Tally) -> None:
        try:
            while not self.stopping.is_set():
                job = self._next_job()
                if job is None:
                    return
                outcome = self._run_job(job)
                if outcome is None:  # interrupted: the trial stays running in the study
                    return
                tally.ran.append(job.number)
                if outcome == "failed":
                    tally.failures_in_a_row += 1
                    if tally.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                        tally.stopped = (f"{MAX_FAILURES_IN_A_ROW} trials failed in a row; "
                                         f"see their run.json and {self.dir / LOGS_DIR}")
                        return
                else:
                    tally.failures_in_a_row = 0
        except BaseException as exc:  # noqa: BLE001 - a bug: the main thread re-raises it
            self.errors.append(exc)
            self.stopping.set()

    def echo(self, text: str) -> None:
        with self.lock:
            self._echo(text)

    # ------------------------------------------------------------------ claiming trials

    def _next_job(self) -> Job | None:
        with self.lock, claim_lock(self.dir):
            if self.stopping.is_set():
                return None
            state = self.optuna.trial.TrialState
            trials = self.study.get_trials(deepcopy=False)
            for trial in trials:
                if trial.state == state.RUNNING and self._orphan(trial):
                    self.storage.set_trial_user_attr(trial._trial_id, "worker", MY_TAG)
                    self.active.add(trial.number)
                    return Job(trial.number, dict(trial.params), adopted=True)
            counted = [t for t in trials if _counts(t, state)]
            if len(counted) >= self.sweep.spec.trials:
                return None
            self.study.sampler = self._sampler(len(trials))
            trial = self.study.ask()
            params = {key: _suggest(trial, key, spec, self.sweep.spec.sampler)
                      for key, spec in self.sweep.spec.space.items()}
            for key, value in {"host": HOST, "worker": MY_TAG, "sweep_dir": str(self.dir)
                               }.items():
                trial.set_user_attr(key, value)
            ahead = [t for t in self.study.get_trials(deepcopy=False)
                     if t.number < trial.number and _counts(t, state)]
            if len(ahead) >= self.sweep.spec.trials:
                # Another worker asked at the same instant and the study is full.
                trial.set_user_attr("cancelled", True)
                self._told(trial, state=state.FAIL, held=True)
                return None
            self.active.add(trial.number)
            return Job(trial.number, params)

    def _sampler(self, number: int):
        """A sampler seeded for the trial about to be asked: a seeded sweep draws trial k's
        parameters from (seed, k) alone, so a resumed sweep or a second worker does not
        repeat the draws of trials 0, 1, ... (TPE reads the history from the storage,
        whichever sampler object asks)."""
        spec = self.sweep.spec
        seed = None if spec.seed is None else (spec.seed * 1_000_003 + number) % 2**32
        grid = spec.grid_space() if spec.sampler == "grid" else {}
        return make_sampler(spec.sampler, seed, grid)

    def _told(self, trial, value: float | None = None, state=None, held: bool = False) -> None:
        """study.tell, with a sampler that does nothing after a trial: Optuna's GridSampler
        calls study.stop() once the grid is used up, which only works inside
        study.optimize, and this sweep asks and tells on its own. The lock keeps another
        thread's ask from swapping the sampler meanwhile."""
        if held:
            self._tell_plainly(trial, value, state)
            return
        with self.lock:
            self._tell_plainly(trial, value, state)

    def _tell_plainly(self, trial, value: float | None, state) -> None:
        self.study.sampler = self.optuna.samplers.RandomSampler()
        self.study.tell(trial, value, state=state)

    def _orphan(self, trial) -> bool:
        attrs = trial.user_attrs
        if "worker" not in attrs:
            # A worker names itself on a trial a moment after asking for it; one killed in
            # that moment left a trial nobody will run.
            started = trial.datetime_start
            return started is not None and (datetime.now() - started).total_seconds() > 60
        if attrs.get("sweep_dir") != str(self.dir) or attrs.get("host") != HOST:
            return False  # another machine's, or another sweep directory's: not ours to run
        if trial.number in self.active:
            return False
        worker = attrs.get("worker")
        if worker == MY_TAG:
            return True
        pid = int(str(worker).split(":")[0]) if worker else None
        return pid is None or process_tag(pid) != worker

    # ------------------------------------------------------------------ one trial

    def _command(self, job: Job) -> tuple[list[str], Path | None]:
        run_dir = trial_run_dir(self.trials_dir, job.number)
        python = [sys.executable, "-m", "cbrun"]
        if run_dir is not None:
            status = RunRecord.load(run_dir).status
            if status in ("completed", "stopped_early", "pruned", "failed"):
                return [], run_dir  # it ended before the study heard of it
            return [*python, "resume", str(run_dir), "--quiet"], run_dir
        spec = self.sweep.spec
        info = SweepTrial(id=spec.name, trial=job.number, study=spec.name,
                          metric=self.sweep.metric, direction=self.sweep.direction,
                          pruner=spec.pruner.model_dump(), storage=shown_storage(self.url),
                          sweep_dir=str(self.dir))
        sets = [arg for text in self.sweep.trial_overrides(job.params, job.number)
                for arg in ("--set", text)]
        return [*python, "train", str(self.sweep.base_path.resolve()), *sets, "--runs-dir",
                str(self.trials_dir), "--quiet", "--sweep-trial", info.model_dump_json()], None

    def _run_job(self, job: Job) -> str | None:
        command, run_dir = self._command(job)
        if command:
            what = "resuming" if run_dir else ("restarting" if job.adopted else "starting")
            self.echo(f"trial {job.number}: {what} {_params(job.params)}")
            log_path = self.dir / LOGS_DIR / f"trial-{job.number:03d}.log"
            env = {**os.environ, STORAGE_ENV: self.url}
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                        env=env, stdin=subprocess.DEVNULL)
                with self.lock:
                    self.procs[job.number] = proc
                code = proc.wait()
                with self.lock:
                    self.procs.pop(job.number, None)
            if self.stopping.is_set():
                return None
            if code in (130, 143, -2, -15):
                # The trial alone was stopped (kill -INT of its process): the sweep stops
                # too, and goes on with --resume, rather than count it as failed.
                self.interrupted_trial = job.number
                self.stopping.set()
                return None
            run_dir = trial_run_dir(self.trials_dir, job.number)
        return self._tell(job, run_dir)

    def _tell(self, job: Job, run_dir: Path | None) -> str:
        state = self.optuna.trial.TrialState
        status = RunRecord.load(run_dir).status if run_dir else "failed"
        if run_dir is not None:
            self.study._storage.set_trial_user_attr(
                _trial_id(self.study, job.number), "run_dir", str(run_dir.relative_to(self.dir)))
        value = trial_value(run_dir, self.sweep.metric, self.sweep.direction) if run_dir else None
        where = run_dir.relative_to(self.dir) if run_dir else f"{LOGS_DIR}/trial-{job.number:03d}.log"
        if status == "pruned":
            self._told(job.number, state=state.PRUNED)
            shown = "no value" if value is None else f"{self.sweep.metric} {value:.6g}"
            self.echo(f"trial {job.number}: pruned after epoch "
                      f"{RunRecord.load(run_dir).epochs_done} ({shown}), {where}")
            outcome = "pruned"
        elif status in ("completed", "stopped_early") and value is not None:
            self._told(job.number, value)
            self.echo(f"trial {job.number}: {status.replace('_', ' ')}, best "
                      f"{self.sweep.metric} {value:.6g}, {where}")
            outcome = "completed"
        else:
            self._told(job.number, state=state.FAIL)
            self.echo(f"trial {job.number}: failed ({status}), see {where}")
            outcome = "failed"
        with self.lock:
            self.active.discard(job.number)
        return outcome


def _counts(trial, state) -> bool:
    """Completed, pruned and running trials count towards `trials`; failed ones do not."""
    if trial.state in (state.COMPLETE, state.PRUNED):
        return True
    return trial.state == state.RUNNING and not trial.user_attrs.get("cancelled")


def _suggest(trial, key: str, spec, sampler: str) -> Any:
    if sampler == "grid" or spec.type == "choice":
        return trial.suggest_categorical(key, spec.grid())
    if spec.type == "int":
        return trial.suggest_int(key, spec.low, spec.high, step=spec.step, log=spec.log)
    return trial.suggest_float(key, spec.low, spec.high, log=spec.type == "loguniform")


def _trial_id(study, number: int) -> int:
    return study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


class TrialInterrupted(Exception):
    """A trial process was interrupted while the sweep was not."""

    def __init__(self, number: int):
        super().__init__(f"trial {number} was interrupted")
        self.number = number


def open_study(sweep: Sweep, storage, create: bool = True):
    """The sweep's study in `storage`, made if it is new; refused when a study of that name
    was made by a different sweep (another space or metric)."""
    import optuna

    spec = sweep.spec
    signature = json.dumps({"space": {k: v.model_dump() for k, v in spec.space.items()},
                            "metric": sweep.metric, "direction": sweep.direction},
                           sort_keys=True)
    sampler_grid = spec.grid_space() if spec.sampler == "grid" else {}
    study = optuna.create_study(study_name=spec.name, storage=storage,
                                direction=sweep.direction, load_if_exists=True,
                                sampler=make_sampler(spec.sampler, spec.seed, sampler_grid),
                                pruner=make_pruner(spec.pruner.model_dump()))
    known = study.user_attrs.get("cbrun_sweep")
    if known is None:
        study.set_user_attr("cbrun_sweep", signature)
    elif known != signature:
        raise RunError(f"the study {spec.name!r} in this storage belongs to a sweep with "
                       f"another space, metric or direction; give this sweep another name")
    return study
