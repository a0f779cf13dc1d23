"""`cbrun train CONFIG --resume-if-exists ID`: one command line for a job that a scheduler
may stop and start again (SLURM's --requeue, a preemptible cloud machine). The first time
it trains in RUNS_DIR/ID; after an interruption (exit 75, the state saved at a batch) the
same line resumes that run; once the run has ended it exits 0 at once. docs/resume.md has
the SLURM recipe."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from cbrun.errors import UsageError
from cbrun.run.record import RunRecord
from cbrun.run.rundir import RUN_FILE

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
ENDED = ("completed", "stopped_early")


def train_or_resume(config_path: Sequence[Path], overrides: Sequence[str], runs_dir: Path,
                    run_id: str,
                    *, quiet: bool, argv: list[str], debug: bool,
                    train_config: Callable[..., tuple[int, Path]], job: dict | None = None,
                    ) -> int:
    """train_config: `cbrun train`'s own (passed in: `train` imports this module). `job`:
    the --processes flags; process 0 alone decides whether to train or resume, and the
    other processes follow it (cbrun/commands/job.py)."""
    if not _ID.fullmatch(run_id):
        raise UsageError(f"--resume-if-exists {run_id!r}: an ID is a folder name of letters, "
                         "digits, '_', '.' and '-' (starting with a letter or digit)")
    if job is not None:
        from cbrun.commands import job as several
        from cbrun.config.load import load_config

        code = several.run_as_job(
            load_config(config_path, tuple(overrides)).config, argv, job, debug,
            lambda peers: _train_or_resume(
                config_path, overrides, runs_dir, run_id, quiet=quiet, argv=argv,
                debug=debug, train_config=train_config, peers=peers))
        if code is not None:
            return code
    return _train_or_resume(config_path, overrides, runs_dir, run_id, quiet=quiet, argv=argv,
                            debug=debug, train_config=train_config, peers=None)


def _train_or_resume(config_path: Path, overrides: Sequence[str], runs_dir: Path,
                     run_id: str, *, quiet: bool, argv: list[str], debug: bool,
                     train_config: Callable[..., tuple[int, Path]], peers: Any) -> int:
    from cbrun.commands.resume import resume_run

    run_dir = runs_dir / run_id
    if (run_dir / RUN_FILE).is_file():
        _check_same(run_dir, config_path, tuple(overrides))
        status = RunRecord.load(run_dir).status
        if status in ENDED:
            click.echo(f"{run_dir} has already ended ({status}); nothing to do", err=True)
            return 0
        return resume_run(run_dir, None, False, (), quiet=quiet, argv=argv, debug=debug,
                          peers=peers)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UsageError(f"{run_dir} exists and is not a run directory cbrun made; give "
                         "another ID, or remove it")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {run_dir}: {exc.strerror or exc}") from None
    code, _ = train_config(config_path, overrides, runs_dir, quiet=quiet, argv=argv,
                           debug=debug, run_dir=run_dir, peers=peers)
    return code


def _check_same(run_dir: Path, config_path: Sequence[Path], overrides: tuple[str, ...]) -> None:
    """The run under this ID was started from this very config and --set: another would
    be trained on under a run that is not its own."""
    from cbrun.config.load import load_config

    given = load_config(config_path, overrides).text.encode("utf-8")
    config_path = ", ".join(map(str, config_path))
    record = RunRecord.load(run_dir)
    started = (run_dir / "config.yaml").read_bytes() if (run_dir / "config.yaml").is_file() \
        else None
    first = tuple(record.file.overrides[:len(overrides)])
    if given != started or first != overrides:
        raise UsageError(f"{run_dir} was started from another config (or other --set) than "
                         f"{config_path}: its config.yaml is what it trains; give another "
                         "--resume-if-exists ID, or `cbrun resume` it")
