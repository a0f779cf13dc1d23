"""`cbrun resume RUN_DIR`: continue a run exactly where it stopped."""

from __future__ import annotations

from pathlib import Path

import click

from cbrun.commands.common import console_for, fill_positions
from cbrun.config.load import load_config
from cbrun.errors import ConfigError
from cbrun.resume import changed_learning_rate, check_resumable, override_changes, truncate_csv
from cbrun.rundir import LOG_FILE, RUN_FILE, RunRecord, run_lock, write_config_files
from cbrun.segment import run_segment


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--epochs", type=click.IntRange(min=1),
              help="New total number of epochs (extends a completed run).")
@click.option("--continue-after-early-stop", "past_early_stop", is_flag=True,
              help="Train on although EarlyStopping ended the run.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Change a config value for the rest of the run (not the model, the "
                   "optimizer type or the list of callbacks).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the run directory.")
@click.pass_context
def resume(ctx: click.Context, run_dir: Path, epochs: int | None, past_early_stop: bool,
           overrides: tuple[str, ...], quiet: bool) -> int:
    """Continue RUN_DIR from its newest saved state: same data order, same random draws,
    same callback state, so it ends where an uninterrupted run would have."""
    if not (run_dir / RUN_FILE).is_file():
        RunRecord.load(run_dir)  # raises the "not a run directory" error
    with run_lock(run_dir):  # first: a second resume of this run stops here
        # Read only under the lock: a process finishing a moment ago has written its last.
        record = RunRecord.load(run_dir)
        return _resume(ctx, record, epochs, past_early_stop, overrides, quiet)


def _resume(ctx: click.Context, record: RunRecord, epochs: int | None, past_early_stop: bool,
            overrides: tuple[str, ...], quiet: bool) -> int:
    run_dir = record.run_dir
    check_resumable(record, epochs, past_early_stop)
    done = record.data.get("epochs_done", 0)

    resolved = run_dir / "resolved.yaml"
    before = load_config(resolved)
    loaded = load_config(resolved, overrides) if overrides else before
    config = loaded.config
    if epochs is not None:
        if config is before.config:  # no --set: keep `before` as it was for the comparison
            config = config.model_copy(deep=True)
        config.fit.epochs = epochs
    changes = override_changes(before.config, config, done)  # refuses before writing
    for path, was, now in changes:
        # stderr, even with --quiet: a changed run must never change silently.
        click.echo(f"{path}: {was!r} -> {now!r}", err=True)
    learning_rate = changed_learning_rate(before.config, config)

    console = console_for(quiet)
    root = ctx.find_root().obj

    def start():
        from cbrun.train.session import train as train_session
        from cbrun.train.state import latest_state

        saved = latest_state(run_dir, warn=lambda text: click.echo(text, err=True))
        first = saved.epochs_done if saved else 0
        if saved is None:
            click.echo("no saved state: the run starts again from epoch 1", err=True)
        elif past_early_stop:
            _forget_early_stop(saved.meta)
        dropped = _rewind_files(run_dir, config, saved, first)
        record.data.update(epochs_planned=config.fit.epochs, epochs_done=first,
                           best=saved.meta.get("best") if saved else None,
                           stopped_early_at=None, stop_reason=None)
        record.data["segments"][-1]["first_epoch"] = first + 1
        record.save()

        def keep_changes() -> None:  # once the state is back in place: the resume is on
            if changes:
                write_config_files(run_dir, (run_dir / "config.yaml").read_bytes(),
                                   config.model_dump(mode="json", by_alias=True))
                record.data.setdefault("overrides", []).extend(overrides)
                record.save()

        console.print(f"resuming [bold]{run_dir}[/bold] after epoch {first}"
                      + (f" (dropped {dropped} rows/events written after it)" if dropped
                         else ""), highlight=False)
        config_dir = Path(record.data.get("config_dir") or run_dir)
        return train_session(config, run_dir, config_dir, record, console=console,
                             live=console.is_terminal and not quiet, restore=saved,
                             learning_rate=learning_rate, on_restored=keep_changes)

    try:
        code = run_segment(record, kind="resume", first_epoch=done + 1, command=root["argv"],
                           console=console, debug=root.get("debug", False), fresh_dir=False,
                           train=start)
    except ConfigError as exc:
        raise fill_positions(exc, loaded.positions) from None
    if quiet:
        click.echo(str(run_dir))
    return code


def _forget_early_stop(meta: dict) -> None:
    meta["stop_training"] = False
    for entry in meta["callbacks"]:
        if entry and entry["class"] == "EarlyStopping":
            entry["state"].update(stopped_epoch=0, wait=0)


def _rewind_files(run_dir: Path, config, saved, done: int) -> int:
    """Drop what was written after the saved state: CSV rows and TensorBoard events."""
    from cbrun.train.tbtrim import trim_event_files

    dropped = truncate_csv(run_dir / LOG_FILE, done)
    for index, spec in enumerate(config.callbacks):
        if spec.type == "CSVLogger" and (run_dir / spec.filename).resolve() != (
                run_dir / LOG_FILE).resolve():
            dropped += truncate_csv(run_dir / spec.filename, done)
        if spec.type == "TensorBoard" and (run_dir / spec.log_dir).is_dir():
            batches, iterations = 0, 0  # no state: every step-indexed event goes
            if saved is not None:
                entry = saved.meta["callbacks"][index]
                batches = (entry or {}).get("state", {}).get("_global_train_batch", 0)
                iterations = saved.meta.get("optimizer_iterations", 0)
            dropped += trim_event_files(run_dir / spec.log_dir, done, batches, iterations)
    return dropped
