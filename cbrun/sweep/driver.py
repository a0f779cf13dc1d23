"""The sweep's worker: Optuna's `study.optimize` runs `--jobs` trials at once, each what
`cbrun train ...` (or `cbrun resume`) would do, in a warm worker process that imported
TensorFlow once and trains trial after trial (cbrun/sweep/pool.py), or, for a config that
cannot share a process (`pool.why_fresh`) and with `--process-per-trial`, as `python -m
cbrun train ...` in a process of its own.

This process never imports TensorFlow: the trials' processes do. Every worker, here or on another
machine, talks only to the study's storage, and what they share is Optuna's:

- the storage's heartbeats: a worker records one for each trial it runs; the trial of a
  worker that is gone (kill -9, a reboot, a lost machine) is failed once its heartbeat is
  `GRACE_S` old, and `RetryHeartbeatStaleTrialCallback` queues a copy with the same
  parameters. A trial stopped by Ctrl-C is failed and queued the same way at once.
- the next trial asked pops the copy; it carries the number of the trial it retries (its
  *first number*), which names the run directory: a worker that holds that directory
  resumes it with `cbrun resume`; elsewhere the parameters are trained anew.

What counts towards `trials`: completed and pruned trials (`MaxTrialsCallback`). A worker
asks for a trial only while fewer than `trials` are completed, pruned, running or queued,
and never for a new one while a retry is owed (`Census`): a queued retry is taken first,
and a trial of this sweep directory found running when the worker starts (a resume after
kill -9) may be a killed worker's until its heartbeat is stale, so the worker waits for
that before its first new trial. The killed trials are retried first, whatever the timing,
and a sweep resumed after a kill goes on with the same trial numbers however fast its
machine is. Two workers asking at the same instant can overshoot, or ask while another
worker's trial is between failed and queued: the new trial gives itself up before
training (failed, with the attribute `cancelled`). A failed trial does not count, and
another is asked in its place.
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cbrun.run.record import RunRecord, SweepTrial
from cbrun.run.rundir import LOG_FILE
from cbrun.run.segment import Terminated, interrupts_raise
from cbrun.sweep.directory import LOGS_DIR, TRIALS_DIR, trial_run_dir
from cbrun.sweep.load import Sweep
from cbrun.sweep.pool import Pool
from cbrun.sweep.study import (
    ATTEMPT_ENV,
    GRACE_S,
    HEARTBEAT_S,
    STORAGE_ENV,
    retry_callback,
    shown_storage,
)

# A worker stops asking for trials after this many failed in a row: a broken setup
# (a missing data file on this machine, no disk) would otherwise fail every trial.
MAX_FAILURES_IN_A_ROW = 3
# A trial of this sweep directory that was running when this worker started is known alive
# once a stale check this long after the start left it running: a killed worker's trial is
# stale by then (its last heartbeat came before the start).
PROVEN_S = GRACE_S + HEARTBEAT_S
# A trial its worker never claimed (killed between asking for it and its first heartbeat)
# is never stale to Optuna; seen unclaimed this long, it is failed and queued again.
UNCLAIMED_S = 2 * GRACE_S
# A trial failed for a retry (stale, interrupted) whose retry was never queued: its worker
# died between the two steps. Seen so this long, its retry is queued here.
ORPHAN_S = GRACE_S
HOST = socket.gethostname()
FINAL = ("completed", "stopped_early", "pruned", "failed")


class TrialEnded(Exception):
    """How a trial ended when not with a value: Optuna records it failed (`catch`)."""


class TrialFailed(TrialEnded):
    pass


class TrialStopped(TrialEnded):
    """Interrupted: queued again, to be resumed by the next run of the sweep."""


class TrialCancelled(TrialEnded):
    """One trial too many, given up before it ran."""


@dataclass
class Census:
    """The study as a worker sees it before asking for a trial."""

    done: int = 0  # completed or pruned: what counts towards `trials`
    running: int = 0
    waiting: int = 0  # queued retries: the next asks take them
    unqueued: int = 0  # failed for a retry that is not queued yet
    doubtful: int = 0  # running, and perhaps a killed worker's (not stale yet)

    @property
    def owed(self) -> bool:
        """A retry is owed that no ask can take yet: no new trial may be asked."""
        return bool(self.unqueued or self.doubtful)

    def free(self, trials: int) -> int:
        """New trials the study still needs."""
        return trials - self.done - self.running - self.waiting - self.unqueued

    def asks(self, trials: int) -> int:
        return self.waiting + (0 if self.owed else max(0, self.free(trials)))


def trial_value(run_dir: Path, metric: str, direction: str) -> float | None:
    """The best value of `metric` over the trial's epochs (the weights EarlyStopping's
    restore_best_weights would keep)."""
    from cbrun.run.logs import LogError, best_epoch, read_log

    try:
        log = read_log(run_dir / LOG_FILE)
    except LogError:
        return None
    if metric not in log.columns:
        return None
    found = best_epoch(log, metric, "max" if direction == "maximize" else "min")
    return None if found is None else float(found[1])


class Driver:
    def __init__(self, sweep: Sweep, sweep_dir: Path, sweep_id: str, study, storage,
                 storage_url: str, jobs: int, echo: Callable[[str], None],
                 pool: Pool | None = None):
        import optuna

        self.optuna = optuna
        self.state = optuna.trial.TrialState
        self.sweep = sweep
        self.dir = sweep_dir.resolve()
        self.id = sweep_id
        self.study = study
        self.storage = storage  # the study's, with heartbeats
        self.url = storage_url
        self.jobs = jobs
        self._echo = echo
        self.retry = retry_callback()
        self.lock = threading.Lock()
        self.census_lock = threading.Lock()  # one thread at a time queues what is owed
        self.stopping = threading.Event()
        self.finished = threading.Event()
        # Set when a trial is handed to its process after another trial ended (the first
        # worker's TensorFlow import and this process's work between two trials are
        # over), and when the driver is done: what waits to share the machine with the
        # trials (the report's set-up) starts then.
        self.settled = threading.Event()
        self.ended_one = False
        self.procs: dict[int, subprocess.Popen] = {}  # the process of each trial running
        self.pool = pool  # the warm workers; None: each trial in a process of its own
        self.fresh_said: set[str] = set()  # why trials went to processes of their own
        self.stopped_trials: set[int] = set()  # interrupted: to be queued again
        self.failures_in_a_row = 0
        self.stopped: str | None = None  # why this worker stopped early
        self.errors: list[BaseException] = []
        self.interrupted_trial: int | None = None
        self.started: float | None = None  # the first census, on the monotonic clock
        self.suspects: set[int] = set()  # running then, perhaps a killed worker's
        self.seen: dict[tuple[int, str], float] = {}  # (trial, "unclaimed"|"orphan") -> since

    # ------------------------------------------------------------------ running

    def run(self) -> None:
        (self.dir / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
        (self.dir / LOGS_DIR).mkdir(exist_ok=True)
        threading.Thread(target=self._guarded, daemon=True).start()
        try:
            # Ctrl-C and SIGTERM reach this thread even where the shell started the sweep
            # with SIGINT ignored (a background job), as they reach each trial. (An Event:
            # a Thread.join cut short by Ctrl-C may take the thread for ended.)
            with interrupts_raise():
                while not self.finished.wait(0.2):
                    pass
        except (KeyboardInterrupt, Terminated):
            self._stop_trials()
            self.finished.wait()  # the stopped trials are queued again
            raise
        if self.errors:
            raise self.errors[0]
        if self.interrupted_trial is not None:
            raise TrialInterrupted(self.interrupted_trial)

    def _guarded(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # noqa: BLE001 - a bug: the main thread re-raises it
            self.errors.append(exc)
            self.stopping.set()
        finally:
            if self.pool is not None:
                self.pool.close()
            self.settled.set()
            self.finished.set()

    def _work(self) -> None:
        """study.optimize while trials are left to ask for; while a retry is owed, wait for
        it to be queued; when the rest are running elsewhere, wait one grace period for
        those whose worker is gone to be retried."""
        trials = self.sweep.spec.trials
        waited = 0.0
        while not self.stopping.is_set() and self.stopped is None:
            census = self._census()
            if census.done >= trials:
                return
            asks = census.asks(trials)
            if asks > 0:
                self.study.optimize(
                    self._objective, n_jobs=min(self.jobs, asks),
                    catch=(TrialEnded,), callbacks=[
                        self.optuna.study.MaxTrialsCallback(trials, states=self._counted),
                        self._after_trial])
                waited = 0.0
            elif census.owed:
                self.stopping.wait(HEARTBEAT_S)  # until the killed trials are stale
            elif waited > GRACE_S + HEARTBEAT_S:
                return  # every trial left runs in a live worker
            else:
                self.stopping.wait(HEARTBEAT_S)
                waited += HEARTBEAT_S

    @property
    def _counted(self) -> tuple:
        return (self.state.COMPLETE, self.state.PRUNED)

    def _census(self, refresh: bool = True, trials: list | None = None) -> Census:
        """What the study holds and owes. refresh: first fail the stale trials (Optuna's
        retry queues each again), and those unclaimed or left unqueued too long.

        A failed trial is owed a retry unless it failed for good (`failed`, `cancelled`) or
        its retry is queued; a retry appears a moment after its trial fails, and an ask in
        between would take its place. A running trial of this sweep directory that was
        running when this worker started is doubtful until a stale check PROVEN_S after
        the start left it running; any trial running then and unclaimed, until claimed.
        trials: the study's trials just read (without refresh), not read again."""
        with self.census_lock:
            return self._count(refresh, trials)

    def _count(self, refresh: bool, trials: list | None) -> Census:
        if refresh:
            self.optuna.storages.fail_stale_trials(self.study)
        now = time.monotonic()
        if refresh or trials is None:
            trials = self.study.get_trials(deepcopy=False)
        if refresh and self._requeue(trials, now):
            trials = self.study.get_trials(deepcopy=False)
        if self.started is None:
            self.started = now
            self.suspects = {t.number for t in trials if t.state == self.state.RUNNING}
        proven = refresh and now - self.started >= PROVEN_S
        queued = _queued(trials)
        census = Census()
        for trial in trials:
            if trial.user_attrs.get("cancelled"):
                continue
            if trial.state in self._counted:
                census.done += 1
            elif trial.state == self.state.WAITING:
                census.waiting += 1
            elif trial.state == self.state.RUNNING:
                census.running += 1
                if trial.number in self.suspects and (
                        not _claimed(trial) or (self._ours(trial) and not proven)):
                    census.doubtful += 1
            elif trial.state == self.state.FAIL and _owed(trial, queued):
                census.unqueued += 1
        if proven:
            self.suspects &= {t.number for t in trials if not _claimed(t)}
        return census

    def _ours(self, trial) -> bool:
        """Run from this sweep directory (by this worker, or one killed before it)."""
        return (trial.user_attrs.get("host") == HOST
                and trial.user_attrs.get("sweep_dir") == str(self.dir))

    def _requeue(self, trials, now: float) -> bool:
        """Fail and queue again a running trial never claimed, and queue the retry of a
        failed trial that never got it, each once seen so long enough."""
        queued = _queued(trials)
        acted = False
        for trial in trials:
            if trial.user_attrs.get("cancelled"):
                continue
            if trial.state == self.state.RUNNING and not _claimed(trial):
                kind, patience = "unclaimed", UNCLAIMED_S
            elif trial.state == self.state.FAIL and _owed(trial, queued):
                kind, patience = "orphan", ORPHAN_S
            else:
                continue
            if now - self.seen.setdefault((trial.number, kind), now) < patience:
                continue
            if kind == "unclaimed":
                self._fail_and_retry(trial)
            else:  # a copy: the retry appends to the lists it holds
                self.retry(self.study, copy.deepcopy(trial))
            acted = True
        return acted

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

    def echo(self, text: str) -> None:
        with self.lock:
            self._echo(text)

    # ------------------------------------------------------------------ after each trial

    def _after_trial(self, study, trial) -> None:
        """Optuna calls this after each trial this worker ran (a FrozenTrial)."""
        if trial.number in self.stopped_trials:
            self.retry(study, trial)
            study.stop()
            return
        if trial.user_attrs.get("cancelled"):
            return
        if trial.state == self.state.FAIL:
            self.failures_in_a_row += 1
            if self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                self.stopped = (f"{MAX_FAILURES_IN_A_ROW} trials failed in a row; see their "
                                f"run.json and {self.dir / LOGS_DIR}")
                study.stop()
                return
        else:
            self.failures_in_a_row = 0
        census = self._census()
        if not census.waiting and (census.owed or census.free(self.sweep.spec.trials) <= 0):
            # The next ask would make a new trial while a retry is owed, or one too many:
            # the rest run elsewhere, or this worker's other threads hold them.
            study.stop()

    # ------------------------------------------------------------------ one trial

    def _objective(self, trial) -> float:
        from cbrun.sweep.sampler import first_number

        frozen = self._frozen(trial.number)
        first = first_number(frozen)
        trial.set_user_attr("attempt", trial.number)
        trial.set_user_attr("host", HOST)
        trial.set_user_attr("sweep_dir", str(self.dir))
        if self.stopping.is_set():
            self.stopped_trials.add(trial.number)
            raise TrialStopped()
        if frozen.user_attrs.get("cancelled") or self._not_needed(trial.number, first):
            trial.set_user_attr("cancelled", True)
            self.study.stop()
            raise TrialCancelled()
        params = {key: _suggest(trial, key, spec, self.sweep.spec.sampler)
                  for key, spec in self.sweep.spec.space.items()}
        run_dir = trial_run_dir(self.dir, first, self.id)
        status = RunRecord.load(run_dir).status if run_dir else None
        if status not in FINAL:  # else it ended before the study heard of it
            run_dir = self._train(trial.number, first, params, run_dir)
        return self._result(trial, first, run_dir)

    def _not_needed(self, number: int, first: int) -> bool:
        """A new trial asked while a retry is owed (a retry queued or failed a moment after
        this ask, a trial perhaps a killed worker's), or at the same instant as another
        worker's last one (the later number gives its trial up); a retry of a trial that
        another attempt already ended or runs (two workers queued the same orphan)."""
        from cbrun.sweep.sampler import first_number

        everything = self.study.get_trials(deepcopy=False)
        trials = [t for t in everything
                  if not t.user_attrs.get("cancelled") and t.number != number]
        if first != number:
            return any(first_number(t) == first and (
                t.state in self._counted
                or (t.state in (self.state.RUNNING, self.state.WAITING) and t.number < number))
                for t in trials)
        census = self._census(refresh=False, trials=everything)
        if census.waiting or census.owed:
            return True
        ahead = [t for t in trials
                 if t.state in (*self._counted, self.state.WAITING)
                 or (t.state == self.state.RUNNING
                     and (t.number < number or first_number(t) != t.number))]
        return len(ahead) >= self.sweep.spec.trials

    def _train(self, number: int, first: int, params: dict[str, Any],
               run_dir: Path | None) -> Path | None:
        if run_dir is not None:
            args = ["resume", str(run_dir), "--quiet"]
            what = "resuming"
        else:
            spec = self.sweep.spec
            info = SweepTrial(id=self.id, trial=first, study=spec.name,
                              metric=self.sweep.metric, direction=self.sweep.direction,
                              pruner=spec.pruner.model_dump(), storage=shown_storage(self.url),
                              sweep_dir=str(self.dir))
            sets = [arg for text in self.sweep.trial_overrides(params, first)
                    for arg in ("--set", text)]
            args = ["train", str(self.sweep.base_path.resolve()), *sets,
                    "--runs-dir", str(self.dir / TRIALS_DIR), "--quiet",
                    "--sweep-trial", info.model_dump_json()]
            what = "starting" if first == number else "restarting"
        self.echo(f"trial {first}: {what} {_params(params)}")
        log_path = self.dir / LOGS_DIR / f"trial-{first:03d}.log"
        env = {STORAGE_ENV: self.url, ATTEMPT_ENV: str(number)}
        code = None
        if self.pool is not None and self._shares_a_worker(params, first):
            code = self.pool.run(args, env, log_path,
                                 lambda proc: self._running(number, proc))
        if code is None:
            code = self._in_own_process(number, args, env, log_path)
        with self.lock:
            self.procs.pop(number, None)
            self.ended_one = True
        if code in (130, 143, 75, -2, -15, -10) and not self.stopping.is_set():
            # The trial alone was stopped (kill -INT of its process): the sweep stops too,
            # and goes on with --resume, rather than count it as failed.
            self.interrupted_trial = first
            self.stopping.set()
        return trial_run_dir(self.dir, first, self.id)

    def _running(self, number: int, proc: subprocess.Popen) -> None:
        with self.lock:
            self.procs[number] = proc
            if self.ended_one:
                self.settled.set()

    def _in_own_process(self, number: int, args: list[str], env: dict[str, str],
                        log_path: Path) -> int:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "cbrun", *args], stdout=log,
                                    stderr=subprocess.STDOUT, env={**os.environ, **env},
                                    stdin=subprocess.DEVNULL)
            self._running(number, proc)
            return proc.wait()

    def _shares_a_worker(self, params: dict[str, Any], first: int) -> bool:
        """Whether the trial's config may train in a warm worker; when not, the sweep's
        output says why, once for each reason."""
        from cbrun.config.load import load_config
        from cbrun.errors import ConfigError
        from cbrun.sweep.pool import why_fresh

        try:
            why = why_fresh(load_config(self.sweep.base_path.resolve(),
                                        self.sweep.trial_overrides(params, first)).config)
        except ConfigError:  # its own process says what is wrong, in its log
            why = "its config does not load"
        if why is None:
            return True
        with self.lock:
            said = why in self.fresh_said
            self.fresh_said.add(why)
        if not said:
            self.echo(f"note: trial {first} and those like it train in a process of their "
                      f"own, not in a warm worker: {why}")
        return False

    def _result(self, trial, first: int, run_dir: Path | None) -> float:
        status = RunRecord.load(run_dir).status if run_dir else None
        if run_dir is not None:
            trial.set_user_attr("run_dir", str(run_dir.relative_to(self.dir)))
        if status not in FINAL and self.stopping.is_set():
            self.stopped_trials.add(trial.number)
            raise TrialStopped()
        value = trial_value(run_dir, self.sweep.metric, self.sweep.direction) if run_dir else None
        where = run_dir.relative_to(self.dir) if run_dir else f"{LOGS_DIR}/trial-{first:03d}.log"
        if status == "pruned":
            shown = "no value" if value is None else f"{self.sweep.metric} {value:.6g}"
            self.echo(f"trial {first}: pruned after epoch "
                      f"{RunRecord.load(run_dir).epochs_done} ({shown}), {where}")
            raise self.optuna.TrialPruned()
        if status in ("completed", "stopped_early") and value is not None:
            self.echo(f"trial {first}: {status.replace('_', ' ')}, best "
                      f"{self.sweep.metric} {value:.6g}, {where}")
            return value
        self.echo(f"trial {first}: failed ({status or 'no run directory'}), see {where}")
        trial.set_user_attr("failed", True)  # for good: no retry is owed
        raise TrialFailed()

    # ------------------------------------------------------------------ the study

    def _frozen(self, number: int):
        return next(t for t in self.study.get_trials(deepcopy=False) if t.number == number)

    def _fail_and_retry(self, trial) -> None:
        """As Optuna does with a stale trial (`fail_stale_trials`), through the storage:
        study.tell would run the sampler's end-of-trial step, outside study.optimize."""
        storage = self.storage
        study_id = storage.get_study_id_from_name(self.study.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            failed = storage.set_trial_state_values(trial_id, state=self.state.FAIL)
        except self.optuna.exceptions.UpdateFinishedTrialError:
            return  # another worker did it
        if failed:
            self.retry(self.study, storage.get_trial(trial_id))


def _claimed(trial) -> bool:
    """Its worker's objective began: the trial records its own number (a queued retry
    carries the number of the trial it retries until then)."""
    return trial.user_attrs.get("attempt") == trial.number


def _queued(trials) -> set[int]:
    """The numbers of the trials whose retry is queued (or ran): every attempt a retry
    goes back to is in its `retry_history`."""
    return {number for t in trials for number in t.system_attrs.get("retry_history", ())}


def _owed(trial, queued: set[int]) -> bool:
    """A failed trial is owed a retry unless it failed for good or its retry is queued."""
    return not (trial.user_attrs.get("failed") or trial.user_attrs.get("cancelled")
                or trial.number in queued)


def _suggest(trial, key: str, spec, sampler: str) -> Any:
    if sampler == "grid" or spec.type == "choice":
        return trial.suggest_categorical(key, spec.grid())
    if spec.type == "int":
        return trial.suggest_int(key, spec.low, spec.high, step=spec.step, log=spec.log)
    return trial.suggest_float(key, spec.low, spec.high, log=spec.type == "loguniform")


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


class TrialInterrupted(Exception):
    """A trial process was interrupted while the sweep was not."""

    def __init__(self, number: int):
        super().__init__(f"trial {number} was interrupted")
        self.number = number
