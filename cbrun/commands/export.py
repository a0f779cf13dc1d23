"""`cbrun export RUN_DIR --format saved_model|litert|onnx`: the run's model as an artifact
for serving, verified against the Keras model on samples of the run's own data.

Everything decided here happens before TensorFlow loads: the run exists, the format's
packages are installed, the output path is safe to write. cbrun/engine/export.py exports
and verifies.
"""

from __future__ import annotations

from pathlib import Path

import click

from cbrun.commands.complete import complete_run_dirs
from cbrun.commands.evaluate import SAFE_MODE_HELP
from cbrun.errors import UsageError
from cbrun.run.checkpoints import choose_checkpoint, open_run
from cbrun.run.exports import (
    DEFAULT_TOLERANCE,
    FORMATS,
    check_target,
    default_target,
    extra_message,
    missing_modules,
)
from cbrun.run.runguard import check_inside, check_tree


@click.command("export")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False),
                shell_complete=complete_run_dirs)
@click.option("-f", "--format", "fmt", type=click.Choice(list(FORMATS)), required=True,
              help="saved_model (TensorFlow Serving), litert (.tflite, for phones and edge "
                   "devices) or onnx (ONNX Runtime and other ONNX tools).")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Where to write the artifact. Defaults to RUN_DIR/export/saved_model/, "
                   "RUN_DIR/export/model.tflite or RUN_DIR/export/model.onnx.")
@click.option("--checkpoint", default="last", show_default=True, metavar="last|best|FILE",
              help="Which weights: those the run ended with, the best monitored epoch's "
                   "ModelCheckpoint file, or a .keras / .weights.h5 file or a saved state.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=DEFAULT_TOLERANCE,
              show_default=True,
              help="Largest difference allowed between the artifact's outputs and the "
                   "Keras model's: absolute for values within [-1, 1], relative beyond.")
@click.option("--samples", type=click.IntRange(min=1), default=32, show_default=True,
              help="How many samples of the run's data the verification runs.")
@click.option("--force", is_flag=True, help="Replace an earlier export at the output path.")
@click.option("--verify-only", is_flag=True,
              help="Do not export: verify the artifact already at the output path.")
@click.option("--no-safe-mode", "unsafe", is_flag=True, help=SAFE_MODE_HELP)
def export(run_dir: Path, fmt: str, output: Path | None, checkpoint: str, tolerance: float,
           samples: int, force: bool, verify_only: bool, unsafe: bool) -> int:
    """Export the model of RUN_DIR and verify the artifact: it is loaded with its own
    runtime (TensorFlow, the LiteRT interpreter, ONNX Runtime), run on samples of the
    run's validation data (else its training data), and each output is compared with the
    Keras model's. The largest difference per output is printed; one over --tolerance
    fails the command (exit 1).

    litert needs ai-edge-litert, onnx needs tf2onnx, onnx and onnxruntime:
    pip install 'cbrun[export]'.

    \b
      cbrun export runs/20261121-153012-digits-mlp --format onnx
      cbrun export runs/20261121-153012-digits-mlp -f litert -o phone/digits.tflite
    """
    run = open_run(run_dir)  # "not a run directory" before anything else
    missing = missing_modules(fmt)
    if missing:
        raise UsageError(extra_message(fmt, missing))
    chosen = choose_checkpoint(run, checkpoint, safe_mode=not unsafe)
    if output is None:
        check_tree(run_dir)
        target = default_target(run_dir, fmt)
        check_inside(run_dir, target.relative_to(run_dir), "the export")
    else:
        target = output
    check_target(target, fmt, force, verify_only)

    from cbrun.engine.export import export_run

    export_run(run, chosen, fmt, target, tolerance=tolerance, samples=samples,
               verify_only=verify_only, echo=click.echo)
    return 0
