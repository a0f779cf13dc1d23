"""`cbrun benchmark RUN_DIR`: one table of the run's model in each format (the Keras model,
SavedModel, LiteRT, LiteRT int8 and float16, ONNX): file size, latency of one sample and of
one batch on this machine, and the validation metric.

The run, the checkpoint, the formats and --keep are checked before TensorFlow loads; the
measuring is cbrun/engine/benchmark.py. What the run's own code prints while it loads goes
to stderr: with --json, stdout is only the JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import click

from cbrun.commands.complete import complete_run_dirs
from cbrun.commands.evaluate import CHECKPOINT_HELP, SAFE_MODE_HELP
from cbrun.errors import UsageError
from cbrun.run.checkpoints import choose_checkpoint, open_run
from cbrun.run.exports import BENCHMARK_ROWS
from cbrun.run.outpath import check_run_files, check_writable
from cbrun.suggest import did_you_mean


@click.command("benchmark")
@click.argument("run_dir", type=click.Path(path_type=Path), shell_complete=complete_run_dirs)
@click.option("--formats", default=",".join(BENCHMARK_ROWS), show_default=True,
              metavar="LIST", help="Which rows, comma-separated.")
@click.option("--checkpoint", default="last", show_default=True, metavar="last|best|FILE",
              help=CHECKPOINT_HELP)
@click.option("--repeats", type=click.IntRange(min=1), default=20, show_default=True,
              help="Timed calls per measurement (after 3 untimed ones); the median is shown.")
@click.option("--keep", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Keep the exports in DIR (new or empty) instead of a temporary folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--no-safe-mode", "unsafe", is_flag=True, help=SAFE_MODE_HELP)
@click.pass_context
def benchmark(ctx: click.Context, run_dir: Path, formats: str, checkpoint: str, repeats: int,
              keep: Path | None, as_json: bool, unsafe: bool) -> int:
    """Benchmark the model of RUN_DIR in each format on this machine: file size, the
    median latency of one sample (batch 1) and of one batch (the run's batch size), and
    the validation metric (accuracy of a classifier output, MAE of any other), every
    format scored on the same samples. The exports are made as `cbrun export` makes them
    (int8 calibrated on the run's training split) in a temporary folder, removed after.
    Formats whose extra is not installed are listed as skipped.

    \b
      cbrun benchmark runs/20261121-153012-digits-mlp
      cbrun benchmark runs/20261121-153012-digits-mlp --formats keras,litert-int8 --json
    """
    names = _rows(formats)
    if keep is not None:
        _check_keep(keep)
    run = open_run(run_dir)
    chosen = choose_checkpoint(run, checkpoint, safe_mode=not unsafe)
    debug = ctx.find_root().obj.get("debug", False)
    from cbrun.engine.tfimport import import_tensorflow

    import_tensorflow(debug)
    from rich.console import Console

    from cbrun.engine.benchmark import benchmark_run

    status = Console(stderr=True)
    with contextlib.redirect_stdout(sys.stderr), status.status("") as shown:
        result = benchmark_run(
            run, chosen, names, repeats=repeats, keep=keep, show=debug,
            progress=lambda what: shown.update(f"benchmark: {what}"))
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return 0
    # Paths and install lines hold brackets (`cbrun[export]`): no markup.
    console = Console(highlight=False, markup=False,
                      width=None if sys.stdout.isatty() else 200)
    for line in benchmark_table(result):
        console.print(line)
    return 0


def _rows(formats: str) -> list[str]:
    names = [name.strip() for name in formats.split(",") if name.strip()]
    if not names:
        raise UsageError(f"--formats is empty; choose from {', '.join(BENCHMARK_ROWS)}")
    for name in names:
        if name not in BENCHMARK_ROWS:
            raise UsageError(f"--formats: no format {name!r}"
                             f"{did_you_mean(name, list(BENCHMARK_ROWS))}; choose from "
                             f"{', '.join(BENCHMARK_ROWS)}")
    return list(dict.fromkeys(names))


def _check_keep(keep: Path) -> None:
    """The exports go into a folder of their own: a new one, or an empty one."""
    if os.path.islink(keep):
        raise UsageError(f"--keep {keep} is a symbolic link (to {os.readlink(keep)}); cbrun "
                         f"does not write through links: name the real path")
    check_run_files(keep, "--keep")
    if keep.exists():
        if not keep.is_dir():
            raise UsageError(f"--keep {keep} is a file; name a folder for the exports")
        if any(keep.iterdir()):
            raise UsageError(f"--keep {keep} is not empty; name a new or empty folder, so no "
                             f"file of yours is replaced")
    check_writable(keep, "--keep")


def benchmark_table(result) -> list:
    """The heading, the table (one row per format), and the lines for rows not measured."""
    from rich.table import Table

    batch = result.batch_size
    heading = (f"{result.run_dir}: {result.checkpoint}; {result.samples} {result.split} "
               f"samples, batch {batch}; median of {result.repeats} calls after 3 untimed, "
               f"on {result.device}")
    scored = next((row.scores for row in result.rows if row.scores), [])
    single = len(scored) == 1
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("format")
    table.add_column("file")
    for name in ("size", "batch 1", f"batch {batch}"):
        table.add_column(name, justify="right")
    for score in scored:
        metric = "accuracy" if score.metric == "accuracy" else "MAE"
        table.add_column(metric if single else f"{score.output} {metric}", justify="right")
    lines = []
    keras = {s.output: s.value for s in next((row.scores for row in result.rows
                                               if row.name == "keras"), [])}
    beyond = False
    for row in result.rows:
        values = {s.output: s.value for s in row.scores}
        cells = []
        for s in scored:
            if s.output not in values:
                cells.append("-")
                continue
            said, over = _against_keras(s.metric, values[s.output], keras.get(s.output),
                                        row.name == "keras")
            beyond |= over
            cells.append(f"{values[s.output]:.4f}{said}")
        table.add_row(row.name, str(row.path) if row.path else "-", _size(row.size),
                      _ms(row.ms_one), _ms(row.ms_batch), *cells)
        if row.skipped:
            lines.append(f"{row.name}: skipped, {row.skipped}")
        if row.error:
            lines.append(f"{row.name}: failed: {row.error}")
    if beyond:
        lines.insert(0, f"!: beyond what `cbrun export` allows by default against the Keras "
                        f"model ({BOUND_POINTS:g} accuracy point, {BOUND_MAE:g}% of the MAE): "
                        f"do not ship it")
    return [heading, table, *result.notes, *lines]


BOUND_POINTS, BOUND_MAE = 1.0, 5.0  # cbrun export's --accuracy-drop and --mae-rise defaults


def _against_keras(metric: str, value: float, keras: float | None,
                   own: bool) -> tuple[str, bool]:
    """(the change from the Keras model's value, as shown beside a format's, whether it is
    beyond export's default bound)."""
    if own or keras is None:
        return "", False
    if metric == "accuracy":
        points = (value - keras) * 100
        over = not points >= -BOUND_POINTS
        return f" ({points:+.1f} pt{'s' * (abs(round(points, 1)) != 1)}){' !' * over}", over
    change = (value - keras) / keras * 100 if keras > 0 else 0.0
    over = not change <= BOUND_MAE
    return f" ({change:+.0f}%){' !' * over}", over


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"


def _ms(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.3g} ms"
