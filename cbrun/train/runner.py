"""Runs a training segment and records how it ended: the part `train` and `resume` share.

Exit codes: 0 when the run completed or stopped early, 1 when it failed, 130 after Ctrl-C,
143 after SIGTERM. Either way run.json says what happened, and an interrupted run says how
to continue it.
"""

from __future__ import annotations

import shutil
import signal
import traceback
from pathlib import Path

import click
from rich.console import Console

from cbrun.config.root import RunConfig
from cbrun.errors import EXIT_SIGINT, EXIT_SIGTERM, CbrunError, ConfigError
from cbrun.rundir import RunRecord
from cbrun.summary import summary_table
from cbrun.train import session
from cbrun.train.state import SavedState


def execute(config: RunConfig, run_dir: Path, config_dir: Path, record: RunRecord, *,
            kind: str, console: Console, live: bool,
            restore: SavedState | None = None, fresh_dir: bool = False) -> int:
    first_epoch = (restore.epochs_done if restore else 0) + 1
    from cbrun.cli import invoked_command

    record.begin_segment(kind, first_epoch, invoked_command())
    previous = session.install_sigterm()
    resume_hint = f"cbrun resume {run_dir}"
    try:
        outcome = session.train(config, run_dir, config_dir, record, console=console,
                                live=live, restore=restore)
    except KeyboardInterrupt:
        return _interrupted(record, resume_hint, "Ctrl-C", EXIT_SIGINT)
    except session.Terminated:
        return _interrupted(record, resume_hint, "SIGTERM", EXIT_SIGTERM)
    except ConfigError:
        if fresh_dir and record.data["epochs_done"] == 0:
            # Refused before the first epoch: nothing was trained, so nothing is kept.
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            record.finish("failed", error="config error")
        raise
    except CbrunError as exc:
        record.finish("failed", error=str(exc))
        raise
    except Exception as exc:  # noqa: BLE001 - recorded, shown with its traceback, exit 1
        record.finish("failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        console.print(f"[red]run failed[/red]: {run_dir}  (see run.json)")
        traceback.print_exc()
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    record.data["stopped_early_at"] = outcome.stopped_early_at
    record.finish(outcome.status, error=outcome.note if outcome.status == "failed" else None)
    console.print(summary_table(record.data, run_dir))
    return 0 if outcome.status in ("completed", "stopped_early") else 1


def _interrupted(record: RunRecord, hint: str, what: str, code: int) -> int:
    record.finish("interrupted", error=f"interrupted by {what}")
    done = record.data["epochs_done"]
    # stderr, and even with --quiet: the way back must never be hidden.
    click.echo(f"\ninterrupted by {what} after {done} complete epoch{'s' if done != 1 else ''}; "
               f"continue exactly where it stopped with:\n  {hint}", err=True)
    return code
