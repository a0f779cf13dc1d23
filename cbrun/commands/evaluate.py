"""`cbrun evaluate RUN_DIR`: the run's model at a checkpoint on one of its splits, or on a
labelled file of the run's kind; a table, JSON, and a classifier's confusion matrix.

The run, the checkpoint and -o are checked before TensorFlow is imported
(cbrun/run/checkpoints.py, cbrun/run/outpath.py); the evaluation itself is cbrun/engine/evaluate.py.
What the run's own code prints while it runs (a data loader, a model factory) goes to
stderr, so stdout holds only the result (`--json`: only the JSON).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from cbrun.commands.complete import complete_run_dirs
from cbrun.errors import UsageError
from cbrun.run.checkpoints import choose_checkpoint, open_run
from cbrun.run.outpath import check_output_file

CHECKPOINT_HELP = ("last (the model the run ended with), best (the ModelCheckpoint file of "
                   "the best monitored epoch), or a .keras / .weights.h5 file.")
FORCE_HELP = "Replace the -o file if it exists."
SAFE_MODE_HELP = ("Load a --checkpoint .keras file the run did not write even if it holds "
                  "Python code (a Lambda layer), which runs when it loads: only for files "
                  "you trust. The run's own model files load without it.")


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path), shell_complete=complete_run_dirs)
@click.option("--split", type=click.Choice(["test", "validation"]), default=None,
              help="The run's split to evaluate (default: test if the run has one, else "
                   "validation), rebuilt as its resolved.yaml declares.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="A labelled file of the run's kind instead: a table with the label "
                   "column, a folder of class folders, an .npz with x and y.")
@click.option("--checkpoint", default="last", show_default=True, metavar="last|best|FILE",
              help=CHECKPOINT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw a classifier's confusion matrix into this PNG.")
@click.option("--force", is_flag=True, help=FORCE_HELP)
@click.option("--no-safe-mode", "unsafe", is_flag=True, help=SAFE_MODE_HELP)
@click.pass_context
def evaluate(ctx: click.Context, run_dir: Path, split: str | None, data: Path | None,
             checkpoint: str, as_json: bool, output: Path | None, force: bool,
             unsafe: bool) -> int:
    """Evaluate the model of RUN_DIR: loss and metrics as training logged them, and for a
    classifier the confusion matrix with the run's class names."""
    from rich.console import Console

    from cbrun.run.evaluation import (
        CONFUSION_HEADING,
        confusion_table,
        heading,
        metrics_table,
        save_confusion_png,
    )

    if split is not None and data is not None:
        raise UsageError("give --split or --data, not both")
    if output is not None and output.suffix.lower() != ".png":
        raise UsageError(f"-o {output}: the confusion matrix is written as a PNG; name "
                         "a .png file")
    if output is not None:
        check_output_file(output, force)
    run = open_run(run_dir)
    chosen = choose_checkpoint(run, checkpoint, safe_mode=not unsafe)
    with contextlib.redirect_stdout(sys.stderr):
        result = _evaluate(ctx, run, chosen, split, data)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if output is not None:
        save_confusion_png(result, output)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return 0
    console = Console(highlight=False)
    console.print(heading(result), markup=False)
    console.print(metrics_table(result))
    if result.baseline:
        console.print(f"baseline: a model that always predicts "
                      f"{result.baseline_predicts}, on the same rows", style="dim")
    if result.confusion is not None:
        console.print(CONFUSION_HEADING)
        console.print(confusion_table(result))
    if output is not None:
        console.print(f"confusion matrix: {output}")
    return 0


def _evaluate(ctx, run, chosen, split, data):
    from cbrun.engine.tfimport import import_tensorflow

    import_tensorflow(ctx.find_root().obj.get("debug", False))
    from cbrun.engine.evaluate import evaluate_run

    return evaluate_run(run, chosen, split, data)
