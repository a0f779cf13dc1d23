"""`cbrun sweep`: a hyperparameter search on Optuna whose trials are ordinary cbrun runs.

    cbrun sweep sweep.yaml [--jobs N] [--storage URL]   # start, or go on with, a sweep
    cbrun sweep --resume runs/sweeps/<name>             # the same, from its directory
    cbrun sweep show runs/sweeps/<name> [--json]        # table, best.yaml, plots

The sweep directory, runs/sweeps/<name>/:
    sweep.yaml   the sweep file as given        sweep.json  what, where, how it ended
    study.db     the Optuna study (SQLite, unless --storage names another)
    trials/      one run directory per trial    logs/       each trial process's output
    best.yaml    the best trial's config        *.png       Optuna's plots, the top curves
"""

from __future__ import annotations

import json
import shlex
import threading
from pathlib import Path
from typing import Any

import click

from cbrun.errors import EXIT_SIGINT, EXIT_SIGTERM, UsageError
from cbrun.run.segment import Terminated
from cbrun.sweep.directory import SWEEP_JSON


class _DefaultToRun(click.Group):
    """`cbrun sweep FILE` means `cbrun sweep run FILE`; `show` is the other command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultToRun)
def sweep() -> None:
    """Search hyperparameters with Optuna; every trial is a cbrun run.

    \b
      cbrun sweep sweep.yaml --jobs 2
      cbrun sweep --resume runs/sweeps/NAME
      cbrun sweep show runs/sweeps/NAME
    """


@sweep.command("run")
@click.argument("sweep_file", required=False, type=click.Path(path_type=Path))
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Continue the sweep in this directory (re-running the same command "
                   "does the same).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Trials trained at once, each in a worker process that keeps TensorFlow "
                   "loaded between its trials.")
@click.option("--process-per-trial", is_flag=True,
              help="Train each trial in a process of its own, TensorFlow imported anew for "
                   "each (slower; for code of yours whose state must not carry over).")
@click.option("--storage", metavar="URL",
              help="Optuna storage shared by every worker: sqlite:///path.db or "
                   "postgresql://user:password@host/db. Defaults to study.db in the sweep "
                   "directory.")
@click.option("--runs-dir", type=click.Path(path_type=Path), default=Path("runs"),
              show_default=True, help="The sweep directory goes in RUNS_DIR/sweeps/.")
def run(sweep_file: Path | None, resume_dir: Path | None, jobs: int, storage: str | None,
        runs_dir: Path, process_per_trial: bool) -> int:
    """Run the trials of SWEEP_FILE until it has its `trials` completed or pruned."""
    from cbrun.sweep.pool import Pool

    if (sweep_file is None) == (resume_dir is None):
        raise UsageError("give a sweep file (cbrun sweep sweep.yaml) or --resume DIR, one "
                         "of the two")
    # The first trial's worker imports TensorFlow (4-10 s) from the start, while this
    # process reads and checks the sweep, opens Optuna, its storage and the study: the
    # first trial waits for the longer of the two, not for both. Workers that get no
    # trial (a refused sweep, a base that must train in processes of its own) are ended.
    pool = None if process_per_trial else Pool(start=1)
    try:
        from cbrun.sweep.directory import (
            SWEEP_COPY,
            check_same,
            new_record,
            read_record,
            save_record,
            trial_ids,
        )
        from cbrun.sweep.load import load_sweep
        from cbrun.sweep.pool import why_fresh
        from cbrun.sweep.study import default_storage, open_storage, shown_storage

        if resume_dir is not None:
            record = read_record(resume_dir)
            sweep_dir = resume_dir
            loaded = load_sweep(resume_dir / SWEEP_COPY, base_path=Path(record["base"]))
        else:
            loaded = load_sweep(sweep_file)
            sweep_dir = runs_dir / "sweeps" / loaded.spec.name
            record = read_record(sweep_dir) if (sweep_dir / SWEEP_JSON).exists() else None
        if record is not None:
            check_same(record, loaded, sweep_dir)
        if pool is not None and why_fresh(loaded.base):
            pool.drop_unused()
        elif pool is not None:
            pool.start(min(jobs, loaded.spec.trials))
        url = _storage_url(storage, record, sweep_dir)
        if url == default_storage(sweep_dir):
            sweep_dir.mkdir(parents=True, exist_ok=True)  # study.db lives in it
        opened = open_storage(url, heartbeat=True, must_exist=bool(trial_ids(sweep_dir)))
        study, sweep_id = _study(loaded, opened, url, sweep_dir, record)
        # Only now, with the storage open and the study this directory's: a URL that
        # fails is not kept for the next run.
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if record is None:
            (sweep_dir / SWEEP_COPY).write_text(loaded.text)
            record = new_record(loaded, sweep_id, shown_storage(url))
        save_record(sweep_dir, record, status="running")
        return _run_sweep(loaded, sweep_dir, sweep_id, study, opened, url, jobs, record,
                          pool)
    finally:
        if pool is not None:
            pool.close()


def _study(loaded, storage, url: str, sweep_dir: Path, record: dict[str, Any] | None,
           create: bool = True):
    from cbrun.sweep.directory import trial_ids
    from cbrun.sweep.study import open_study, shown_storage

    return open_study(loaded, storage, where=shown_storage(url), sweep_dir=sweep_dir,
                      sweep_id=record["id"] if record else None,
                      trial_ids=trial_ids(sweep_dir), create=create)


def _run_sweep(loaded, sweep_dir: Path, sweep_id: str, study, storage, url: str, jobs: int,
               record: dict[str, Any], pool=None) -> int:
    from cbrun.sweep.directory import save_record
    from cbrun.sweep.driver import Driver, TrialInterrupted
    from cbrun.sweep.study import shown_storage

    click.echo(f"sweep {loaded.spec.name}: {loaded.spec.trials} trials, {loaded.metric} "
               f"({loaded.direction}), storage {shown_storage(url)}, {jobs} at a time; "
               f"in {sweep_dir}")
    driver = Driver(loaded, sweep_dir, sweep_id, study, storage, url, jobs, click.echo,
                    pool=pool)
    ready = threading.Thread(target=_prepare_report, args=(driver,), daemon=True,
                             name="cbrun-sweep-report")
    ready.start()
    try:
        driver.run()
    except (KeyboardInterrupt, Terminated, TrialInterrupted) as exc:
        what, code = {KeyboardInterrupt: ("Ctrl-C", EXIT_SIGINT),
                      Terminated: ("SIGTERM", EXIT_SIGTERM),
                      TrialInterrupted: (f"a signal to trial {getattr(exc, 'number', '')}",
                                         EXIT_SIGINT)}[type(exc)]
        save_record(sweep_dir, record, status="interrupted")
        click.echo(f"\nsweep interrupted by {what}; finished trials are kept and interrupted "
                   f"ones resume exactly where they stopped with:\n  cbrun sweep --resume "
                   f"{shlex.quote(str(sweep_dir))}", err=True)
        ready.join()  # not torn down mid-import by the interpreter's end
        return code
    ready.join()  # matplotlib is used by one thread at a time
    rows = _report(loaded, study, sweep_dir, sweep_id)
    done = sum(r["status"] in ("completed", "pruned") for r in rows)
    status = "finished" if done >= loaded.spec.trials else "incomplete"
    save_record(sweep_dir, record, status=status, done=done)
    if driver.stopped:
        click.echo(f"error: {driver.stopped}", err=True)
        return 1
    if status == "incomplete":
        running = [r for r in rows if r["status"] in ("running", "waiting")]
        click.echo(f"{done} of {loaded.spec.trials} trials done; {len(running)} still running "
                   f"in other workers ({', '.join(sorted({str(r['host']) for r in running}))})",
                   err=True)
    return 0


def _prepare_report(driver) -> None:
    """What drawing the report needs the first time (matplotlib's and Optuna's plotting
    modules, the fonts, the mathtext parser: 1-2 s), done while the second trial trains
    rather than after the last: not while TensorFlow's import in the first worker competes
    for the processor, nor while the driver works between two trials; never for a sweep
    that was stopped."""
    driver.settled.wait()
    if driver.stopping.is_set():
        return
    try:
        from cbrun.commands import plot  # noqa: F401 - top.png
        from cbrun.sweep.results import prepare_plots

        prepare_plots()
    except Exception:  # noqa: BLE001, S110 - a head start only: the report says what fails
        pass


def _report(loaded, study, sweep_dir: Path, sweep_id: str, top: int = 3,
            as_json: bool = False):
    from cbrun.sweep.results import (
        TOP_FILE,
        best_row,
        top_runs,
        trial_rows,
        write_best,
        write_plots,
    )

    rows = trial_rows(study, sweep_dir, sweep_id)
    best = best_row(rows, loaded.direction)
    written = []
    if best is not None:
        written.append(write_best(loaded, sweep_dir, best))
    plots, skipped = write_plots(study, sweep_dir, loaded.metric)
    written += plots
    runs = top_runs(rows, loaded.direction, top)
    if runs:
        from click import get_current_context

        from cbrun.commands.plot import plot

        ctx = get_current_context()
        with _quiet_echo(True):  # its "wrote top.png" is listed below with the others
            ctx.invoke(plot, paths=tuple(runs), output=sweep_dir / TOP_FILE, metrics=(),
                       terminal=False, watch=False, interval=2.0, width=None, height=None,
                       max_refreshes=None)
        written.append(sweep_dir / TOP_FILE)
    if as_json:
        click.echo(json.dumps({"sweep": loaded.spec.name, "metric": loaded.metric,
                               "direction": loaded.direction, "trials": rows, "best": best,
                               "files": [str(p) for p in written]}, indent=2))
        return rows
    _print_table(loaded, rows, best)
    for path in written:
        click.echo(f"wrote {path}")
    for note in skipped:
        click.echo(f"skipped {note}")
    if runs:
        click.echo("the top trials' curves: cbrun plot "
                   + " ".join(shlex.quote(str(p)) for p in runs))
    return rows


class _quiet_echo:
    """Hides what `cbrun plot` prints."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __enter__(self):
        if self.quiet:
            import contextlib
            import io

            self._cm = contextlib.redirect_stdout(io.StringIO())
            self._cm.__enter__()

    def __exit__(self, *exc):
        if self.quiet:
            self._cm.__exit__(*exc)


def _print_table(loaded, rows: list[dict[str, Any]], best: dict[str, Any] | None) -> None:
    from rich.console import Console
    from rich.table import Table

    keys = list(loaded.spec.space)
    table = Table(title=f"sweep {loaded.spec.name}: {loaded.metric} ({loaded.direction})",
                  title_justify="left")
    for name in ["trial", "status", loaded.metric, "epochs", *_labels(keys)]:
        table.add_column(name, justify="right" if name != "status" else "left")
    for row in rows:
        value = "" if row["value"] is None else f"{row['value']:.4f}"
        mark = " *" if best is not None and row["number"] == best["number"] else ""
        params = [_shown(row["params"].get(k)) for k in keys]
        table.add_row(f"{row['number']}{mark}", row["status"], value,
                      "" if row["epochs"] is None else str(row["epochs"]), *params)
    # As wide as the table needs, on a terminal or not: a cut column would hide a value.
    Console(highlight=False, width=400).print(table)
    if best is not None:
        click.echo(f"best: trial {best['number']}, {loaded.metric} {best['value']:.6g}")


def _labels(keys: list[str]) -> list[str]:
    """Column names: a key's last part (`learning_rate`), or its last two where that is
    ambiguous (`layers[1].units`, `layers[2].units`); --json has the full keys."""
    last = [key.split(".")[-1] for key in keys]
    return [short if last.count(short) == 1 else ".".join(key.split(".")[-2:])
            for key, short in zip(keys, last, strict=True)]


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


@sweep.command("show")
@click.argument("sweep_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the trials as JSON.")
@click.option("--storage", metavar="URL", help="The study's storage, when sweep.json keeps "
                                               "it without its password.")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many of the best trials top.png compares.")
def show(sweep_dir: Path, as_json: bool, storage: str | None, top: int) -> int:
    """Print the trials of a sweep; write best.yaml, Optuna's plots and top.png."""
    from cbrun.sweep.directory import SWEEP_COPY, read_record
    from cbrun.sweep.load import load_sweep
    from cbrun.sweep.study import open_storage

    record = read_record(sweep_dir)
    loaded = load_sweep(sweep_dir / SWEEP_COPY, base_path=Path(record["base"]))
    url = _storage_url(storage, record, sweep_dir)
    opened = open_storage(url, must_exist=True)
    study, sweep_id = _study(loaded, opened, url, sweep_dir, record, create=False)
    _report(loaded, study, sweep_dir, sweep_id, top=top, as_json=as_json)
    return 0


def _storage_url(given: str | None, record: dict[str, Any] | None, sweep_dir: Path) -> str:
    from cbrun.sweep.directory import SWEEP_JSON
    from cbrun.sweep.study import default_storage

    if given:
        return given
    if record is None:
        return default_storage(sweep_dir)
    kept = record["storage"]
    if ":***@" in kept:
        raise UsageError(f"{sweep_dir / SWEEP_JSON} keeps the storage without its password "
                         f"({kept}); give it again with --storage URL")
    return kept
