"""One run trained by several processes: `cbrun train` and `cbrun resume` in each of them.

Process 0 is the run's own process: it validates, creates or opens the run directory,
takes its lock, writes every file of the run (log, state, run.json, trackers), and tells
the others what to train (`tell_job`). The others (`follow`) train the same model on their
share of every batch, and write what their callbacks write into a scratch folder of their
own, removed at their end: Keras's saves and loads, and every assignment of a variable,
are collective, so each process makes them, and only process 0's land in the run.

How a job ends: every process reaches its end, or the job agrees to stop at an epoch's end
(a signal, fit.max_time), and all meet in JAX's shutdown; or one process fails, says why
(`Peers.leave`), and ends at once, and the others end within seconds, process 0 recording
the run as failed with the process and its reason (cbrun/engine/peers.py).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cbrun.errors import CbrunError, ConfigError, Problem
from cbrun.run.processes import Launch, Membership, launch, membership, without_launch_flag

# Callbacks that call the model eagerly on one process's data, which under several
# processes is a collective the others never join.
EAGER_CALLBACKS = ("PredictionSamples",)


def start(config: Any, argv: list[str], *, processes: int | None, coordinator: str | None,
          process_id: int | None, debug: bool) -> Any:
    """None: one process. An int: the exit code of a local launch (`--processes N`), which
    has run. Else the joined job (cbrun/engine/peers.Peers)."""
    place = membership(config, processes, coordinator, process_id)
    if place is None:
        return None
    if isinstance(place, Launch):
        click.echo(f"starting {place.count} processes on this machine", err=True)
        return launch(place.count, without_launch_flag(argv[1:]), debug=debug,
                      command=argv)
    return join(config, place, debug)


def run_as_job(config: Any, argv: list[str], job: dict, debug: bool,
               body: Callable[[Any], int]) -> int | None:
    """A command under --processes/--coordinator (`job`: those flags): the exit code once
    this process's part has ended: a local launch that has run, a follower's, or process
    0's `body(peers)`. None: one process only, so the caller runs its command itself."""
    peers = start(config, argv, debug=debug, **job)
    if peers is None or isinstance(peers, int):  # one process; or launched here, and ended
        return peers
    if not peers.writer:
        return follow(peers, argv, debug)
    return lead(peers, lambda: body(peers))


def join(config: Any, place: Membership, debug: bool = False) -> Any:
    from cbrun.engine.peers import join as join_job

    peers = join_job(place.coordinator, place.count, place.index)
    if peers.count > 1:
        refused = [i for i, spec in enumerate(config.callbacks) if spec.type in EAGER_CALLBACKS]
        if refused:
            error = ConfigError([Problem(
                loc=("callbacks", i, "type"), given=config.callbacks[i].type,
                message="calls the model on one process's samples, which under several "
                        "processes would wait for the others forever; train with one "
                        "process, or without it") for i in refused])
            if peers.writer:
                _leave_with_error(peers, error)
            _end_quietly(peers, error.exit_code)
    # TensorFlow and Keras loaded by all processes at once, before process 0 says what to
    # train: a process failing early then finds process 0 out of the import, whose loading
    # of shared libraries can hold Python's lock for seconds (and the watcher with it).
    from cbrun.engine.tfimport import import_tensorflow

    import_tensorflow(debug, training=True, backend=config.backend)
    return peers


def lead(peers: Any, body: Callable[[], int]) -> int:
    """Process 0's command: `body` runs it; the others are told how it ended."""
    if peers is None:
        return body()
    try:
        code = body()
    except CbrunError as exc:
        _leave_with_error(peers, exc)
    except BaseException as exc:
        peers.leave(f"{type(exc).__name__}: {exc}")
        raise
    if not _told:  # nothing to train (a run that has ended): the others end too
        peers.tell("job", json.dumps({"kind": "none", "code": code}))
        _told.append(True)
    elif code != 0 and not peers.stopped:
        from cbrun.engine.peers import end_now

        peers.leave(f"process 0 ended with code {code}")
        end_now(None, code)
    peers.finish()
    return code


_told: list[bool] = []


def tell_job(peers: Any, *, kind: str, run_dir: Path, config: Any, config_dir: Path,
             positions: Any, state: Path | None = None, learning_rate: float | None = None,
             first_epoch: int = 1) -> None:
    """What the others train (process 0, once the run is set up), where its config's
    values stand in its files (`positions`: their config errors name the file and line),
    and where process 0 records a failure of theirs."""
    if peers is None:
        return
    from cbrun.run.segment import record_peer_failure

    peers.on_left = lambda index, why: record_peer_failure(
        run_dir, f"process {index} of {peers.count} failed: {why}")
    peers.tell("job", json.dumps({
        "kind": kind, "run_dir": str(run_dir), "config": config.model_dump(
            mode="json", by_alias=True), "config_dir": str(config_dir),
        "state": None if state is None else str(state), "learning_rate": learning_rate,
        "first_epoch": first_epoch, "positions": positions.to_json()}))
    _told.append(True)


def follow(peers: Any, argv: list[str], debug: bool) -> int:
    """A process other than 0: train what process 0 says, writing into a scratch folder."""
    from cbrun.commands.common import console_for, fill_positions
    from cbrun.config.monitors import primary_monitor
    from cbrun.config.positions import Positions
    from cbrun.config.root import RunConfig
    from cbrun.engine.peers import end_now
    from cbrun.run.handle import OpenRun
    from cbrun.run.record import RunRecord
    from cbrun.run.segment import run_segment
    from cbrun.state.files import SavedState

    job = json.loads(peers.hear("job"))
    if job["kind"] == "none":
        peers.finish()
        return job["code"]
    if not debug:  # process 0 says what the job does; its own failure is said here too
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    # The model and data exactly as process 0 has them; no trackers (process 0's alone).
    config = RunConfig.model_validate(job["config"]).model_copy(update={"tracking": None})
    scratch = Path(tempfile.mkdtemp(prefix=f"cbrun-process{peers.index}-"))
    try:
        record = RunRecord.new(scratch, config.name, config.seed, config.fit.epochs,
                               primary_monitor(config), argv, config_dir=job["config_dir"],
                               overrides=[], sweep=None, data_files={})
        state = Path(job["state"]) if job["state"] else None
        restore = None if state is None else SavedState(
            state, json.loads((state / "state.json").read_text()))
        console = console_for(True)

        def train():
            from cbrun.engine.session import train as train_session

            return train_session(OpenRun(scratch, record, config), console=console,
                                 live=False, restore=restore,
                                 learning_rate=job["learning_rate"])

        try:
            code = run_segment(record, kind=job["kind"], first_epoch=job["first_epoch"],
                               command=argv, console=console, debug=debug, fresh_dir=False,
                               train=train, backend=config.backend)
        except ConfigError as exc:  # at the file and line, as process 0 says its own
            why, code = str(fill_positions(exc, Positions.from_json(job["positions"]))), \
                exc.exit_code
        except CbrunError as exc:
            why, code = str(exc), exc.exit_code
        except BaseException as exc:  # noqa: BLE001 - said to process 0, which records it
            why, code = f"{type(exc).__name__}: {exc}", 1
        else:
            why = None if code == 0 or peers.stopped else (
                RunRecord.load(scratch).file.error or f"ended with code {code}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if why is not None:
        peers.leave(why)
        # Seen on this machine's terminal (SSH, srun), and by the launcher should process 0
        # be unable to say it.
        end_now(f"error: process {peers.index} of {peers.count}: {why}", code)
    peers.finish()
    return code


def _leave_with_error(peers: Any, exc: CbrunError) -> None:
    """Process 0's error, said as the command says it, then the job ends at once (a normal
    exit would wait for the others in JAX's shutdown)."""
    from cbrun.engine.peers import end_now

    peers.leave(str(exc))
    end_now(f"error: {exc}", exc.exit_code)


def _end_quietly(peers: Any, code: int) -> None:
    from cbrun.engine.peers import end_now

    peers.leave("refused")
    end_now(None, code)
