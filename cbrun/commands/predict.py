"""`cbrun predict RUN_DIR INPUT -o OUT`: the run's model on new samples of its kind (a
table without the label column, an image or a folder of images, an .npz), one row per
sample in OUT (.csv, .parquet or .npz), with the columns --keep names copied from a table.
The run, the checkpoint, --keep and OUT are checked before TensorFlow is imported (OUT: cbrun/run/outpath.py); the prediction is cbrun/engine/predict.py, or for a
table of several files (a folder of shards, a glob) cbrun/engine/predict_stream.py, a
batch at a time.
What the run's own code prints (a data loader, a model factory) goes to stderr: stdout
holds cbrun's one line."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from cbrun.commands.complete import complete_run_dirs
from cbrun.commands.evaluate import CHECKPOINT_HELP, FORCE_HELP, SAFE_MODE_HELP
from cbrun.errors import UsageError
from cbrun.run.checkpoints import choose_checkpoint, open_run
from cbrun.run.outpath import check_output_file


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path), shell_complete=complete_run_dirs)
@click.argument("source", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the predictions; the suffix picks the format: .csv, "
                   ".parquet, or .npz (which also holds the raw outputs).")
@click.option("--keep", "keep", multiple=True, metavar="COLUMN[,COLUMN...]",
              help="For a table INPUT: copy these columns into the predictions as they "
                   "are, after the row number (an id column; repeatable).")
@click.option("--top-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="For a classifier: how many classes to list per sample, most probable "
                   "first.")
@click.option("--checkpoint", default="last", show_default=True, metavar="last|best|FILE",
              help=CHECKPOINT_HELP)
@click.option("--force", is_flag=True, help=FORCE_HELP)
@click.option("--no-safe-mode", "unsafe", is_flag=True, help=SAFE_MODE_HELP)
@click.pass_context
def predict(ctx: click.Context, run_dir: Path, source: Path, output: Path,
            keep: tuple[str, ...], top_k: int, checkpoint: str, force: bool,
            unsafe: bool) -> int:
    """Predict with the model of RUN_DIR on INPUT: for a classifier the class name and its
    probability per sample, else the model's outputs.

    \b
      cbrun predict runs/20261130-031619-animals new.csv -o predictions.csv --keep id
      cbrun predict runs/20261130-031619-animals new.parquet -o predictions.parquet
    """
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(f"-o {output}: write predictions to a .csv, a .parquet or an .npz "
                         f"file")
    columns = _kept(keep)
    from cbrun.data.shards import is_glob

    if not source.exists() and not is_glob(str(source)):
        raise UsageError(f"INPUT {source} does not exist")
    check_output_file(output, force)
    run = open_run(run_dir)
    if columns and run.config.data.source not in ("csv", "parquet"):
        raise UsageError(f"--keep passes columns of a table through; {run_dir} predicts from "
                         f"{run.config.data.source} data, which has no columns")
    chosen = choose_checkpoint(run, checkpoint, safe_mode=not unsafe)
    from cbrun.engine.tfimport import import_tensorflow

    import_tensorflow(ctx.find_root().obj.get("debug", False))
    from cbrun.engine.predict import predict_run, write_predictions
    from cbrun.engine.predict_stream import is_shards, predict_shards

    if is_shards(run, source):  # a folder of shards, a glob: a batch at a time
        with contextlib.redirect_stdout(sys.stderr):
            rows, notes = predict_shards(run, chosen, source, output, top_k, columns)
        for note in notes:
            click.echo(f"note: {note}", err=True)
        click.echo(f"{rows} predictions ({chosen.label}) -> {output}")
        return 0
    if not source.exists():
        raise UsageError(f"INPUT {source} does not exist")
    with contextlib.redirect_stdout(sys.stderr):
        columns, raw, inputs = predict_run(run, chosen, source, top_k, columns)
    for note in inputs.notes:
        click.echo(f"note: {note}", err=True)
    write_predictions(output, columns, raw)
    click.echo(f"{len(inputs.ids)} predictions ({chosen.label}) -> {output}")
    return 0


OUTPUT_SUFFIXES = (".csv", ".parquet", ".npz")


def _kept(given: tuple[str, ...]) -> tuple[str, ...]:
    """--keep id --keep name,city -> (id, name, city), each once."""
    names = [name.strip() for text in given for name in text.split(",")]
    if any(not name for name in names):
        raise UsageError(f"--keep {','.join(given)}: an empty column name; name columns of "
                         f"INPUT, comma-separated")
    return tuple(dict.fromkeys(names))
