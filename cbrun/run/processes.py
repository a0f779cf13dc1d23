"""Which processes train one run together (`distribute: data_parallel` on JAX), and the local
launcher that starts them on one machine (`--processes N`). Lower floor: no TensorFlow, no
JAX; joining the job is cbrun/engine/peers.py's.

A process learns its place in the job from, in order: the flags (`--coordinator HOST:PORT
--processes N --process-id I`), the environment (CBRUN_COORDINATOR, CBRUN_PROCESSES,
CBRUN_PROCESS_ID: what the launcher gives its children, and what a plain SSH recipe sets),
or the scheduler's own environment as JAX reads it (SLURM's srun, Open MPI's mpirun).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cbrun.errors import UsageError

ENV_COORDINATOR = "CBRUN_COORDINATOR"
ENV_PROCESSES = "CBRUN_PROCESSES"
ENV_PROCESS_ID = "CBRUN_PROCESS_ID"
# The launcher's own command line (JSON), which its processes record in run.json: theirs
# lacks --processes N, which the launcher turned into the variables above.
ENV_COMMAND = "CBRUN_LAUNCH_COMMAND"
# After one process ends in failure, the others end within seconds by themselves
# (cbrun/engine/peers.py); the launcher kills what is left after this long.
GRACE_S = 30.0
FLAGS = ("--processes", "--coordinator", "--process-id")


@dataclass(frozen=True)
class Membership:
    """This process's place in a job: all None where the scheduler's environment says it
    (JAX reads SLURM's and Open MPI's variables itself)."""

    coordinator: str | None
    count: int | None
    index: int | None
    source: str


@dataclass(frozen=True)
class Launch:
    """`--processes N` alone: start the N processes here."""

    count: int


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name}={value!r}: a whole number is wanted") from None


def _scheduler(env: Mapping[str, str]) -> str | None:
    """SLURM inside a job step of several tasks (srun), or Open MPI's mpirun of several."""
    if "SLURM_STEP_ID" in env and (_env_int(env, "SLURM_STEP_NUM_TASKS")
                                   or _env_int(env, "SLURM_NTASKS") or 1) > 1:
        return "SLURM"
    if (_env_int(env, "OMPI_COMM_WORLD_SIZE") or 1) > 1:
        return "Open MPI"
    return None


def membership(config: Any, processes: int | None = None, coordinator: str | None = None,
               process_id: int | None = None, env: Mapping[str, str] | None = None,
               ) -> Membership | Launch | None:
    """This process's place in a job of several processes, a local launch, or None (the
    run is one process)."""
    env = os.environ if env is None else env
    from_env = coordinator is None and process_id is None and processes is None
    if from_env:
        coordinator = env.get(ENV_COORDINATOR) or None
        processes = _env_int(env, ENV_PROCESSES)
        process_id = _env_int(env, ENV_PROCESS_ID)
    given = [name for name, value in zip(FLAGS, (processes, coordinator, process_id),
                                         strict=True) if value is not None]
    source = "the environment (CBRUN_*)" if from_env else "the flags"
    several = config.distribute.type == "data_parallel"
    if given and not several:
        raise UsageError(
            f"{', '.join(given)} (from {source}) train one run in several processes, which "
            f"needs backend: jax with distribute: data_parallel; this config has distribute: "
            f"{config.distribute.type}")
    if not several:
        return None
    if not given:
        found = _scheduler(env)
        return Membership(None, None, None, found) if found else None
    if processes is None:
        raise UsageError(f"{', '.join(given)} given without --processes N ({ENV_PROCESSES}), "
                         "the number of processes of the job")
    if processes < 1:
        raise UsageError(f"--processes {processes}: a job has at least one process")
    if coordinator is None and process_id is None:
        return Launch(processes) if processes > 1 else None
    if coordinator is None or process_id is None:
        missing = "--coordinator HOST:PORT" if coordinator is None else "--process-id I"
        raise UsageError(f"a process that joins a job needs --coordinator, --processes and "
                         f"--process-id (or {ENV_COORDINATOR}, {ENV_PROCESSES}, "
                         f"{ENV_PROCESS_ID}); {missing} is missing")
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--coordinator {coordinator!r}: write it HOST:PORT, e.g. "
                         "node1:12345 (process 0's machine, a free port)")
    if not 0 <= process_id < processes:
        raise UsageError(f"--process-id {process_id}: the ids of a job of {processes} "
                         f"processes are 0 to {processes - 1}")
    return Membership(coordinator, processes, process_id, source)


def without_launch_flag(args: list[str]) -> list[str]:
    """The command line a launched process runs: the launcher's, less `--processes N`."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--processes":
            skip = True
        elif not arg.startswith("--processes="):
            out.append(arg)
    return out


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """A launched process ends with its launcher, even a SIGKILLed one (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def launched_command() -> list[str] | None:
    """The command line of the launcher that started this process, if one did."""
    given = os.environ.get(ENV_COMMAND)
    return json.loads(given) if given else None


def launch(count: int, args: list[str], *, debug: bool = False,
           command: list[str] | None = None) -> int:
    """Start `cbrun ARGS` as processes 0..count-1 of a job on this machine, and wait for
    them. Process 0 talks to the terminal as one `cbrun train` does; the others are quiet
    (a failure reaches process 0, which says it). Ctrl-C and SIGTERM reach each process
    once. Exit code: process 0's."""
    env = {**os.environ, ENV_COORDINATOR: f"127.0.0.1:{_free_port()}",
           ENV_PROCESSES: str(count), ENV_COMMAND: json.dumps(command or ["cbrun", *args])}
    # Each quiet process's stderr, shown if it fails and process 0 cannot say why.
    logs = [None] + [tempfile.TemporaryFile() for _ in range(count - 1)]  # noqa: SIM115
    children = []
    for index in range(count):
        quiet = index > 0 and not debug
        children.append(subprocess.Popen(
            [sys.executable, "-m", "cbrun", *args], env={**env, ENV_PROCESS_ID: str(index)},
            stdout=subprocess.DEVNULL if quiet else None, stderr=logs[index] if quiet else None,
            # Its own session, so that a terminal's Ctrl-C reaches it once, from here.
            start_new_session=True, preexec_fn=_die_with_parent))  # noqa: PLW1509
    forwarded = {sig: signal.signal(sig, lambda signum, _frame: _forward(children, signum))
                 for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    try:
        codes = _wait(children)
    finally:
        for sig, handler in forwarded.items():
            signal.signal(sig, handler)
    first = codes[0]
    for index, code in enumerate(codes[1:], start=1):
        # Process 0 has said why the job ended when it ended on its own with an error;
        # otherwise a process that failed says it here.
        if code != 0 and not (first is not None and first > 0):
            logs[index].seek(0)
            lines = logs[index].read().decode(errors="replace").strip().splitlines()
            # Its own last word (cbrun/commands/job.py), said as process 0 would have.
            mine = f"error: process {index} of {count}: "
            said = [i for i, line in enumerate(lines) if line.startswith(mine)]
            if said and code is not None:
                why = "\n".join(lines[said[-1]:]).removeprefix(mine)
                print(f"error: process {index} of {count} failed: {why}; the other "
                      "processes were stopped", file=sys.stderr)
                continue
            print(f"process {index} exited with {_describe(code)}"
                  + "".join(f"\n  {line}" for line in lines[-5:]), file=sys.stderr)
    for log in logs[1:]:
        log.close()
    if first is None:
        return 1
    return first if first >= 0 else 128 - first


def _forward(children: list[subprocess.Popen], signum: int) -> None:
    for child in children:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)


def _describe(code: int | None) -> str:
    if code is None:
        return "no code: killed after the others had ended"
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"


def _wait(children: list[subprocess.Popen]) -> list[int | None]:
    """Every process's exit code; None for one killed here because it outlived a failed
    one by GRACE_S."""
    failed_at = None
    killed: set[int] = set()
    while True:
        codes = [child.poll() for child in children]
        if all(code is not None for code in codes):
            return [None if i in killed else code for i, code in enumerate(codes)]
        if failed_at is None and any(code not in (None, 0) for code in codes):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > GRACE_S:
            for index, child in enumerate(children):
                if child.poll() is None:
                    child.kill()
                    killed.add(index)
        time.sleep(0.1)
