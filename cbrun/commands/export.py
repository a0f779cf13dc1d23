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
    DEFAULT_ACCURACY_DROP,
    DEFAULT_CALIBRATION,
    DEFAULT_MAE_RISE,
    DEFAULT_TOLERANCE,
    FORMATS,
    QUANTIZE,
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
                   "Keras model's: absolute for values within [-1, 1], relative beyond. "
                   "(A quantized export is judged by its metric instead.)")
@click.option("--quantize", type=click.Choice(QUANTIZE),
              help="LiteRT post-training quantization: int8 weights and activations "
                   "(calibrated on the run's training split) or float16 weights. Verified "
                   "by the validation metric against the Keras model's. --format litert "
                   "only.")
@click.option("--calibration-samples", type=click.IntRange(min=1),
              default=DEFAULT_CALIBRATION, show_default=True,
              help="--quantize int8: how many training samples measure the ranges.")
@click.option("--accuracy-drop", type=click.FloatRange(min=0), default=DEFAULT_ACCURACY_DROP,
              show_default=True, metavar="POINTS",
              help="--quantize: how many accuracy points a classifier output may lose on "
                   "the validation split against the Keras model.")
@click.option("--mae-rise", type=click.FloatRange(min=0), default=DEFAULT_MAE_RISE,
              show_default=True, metavar="PERCENT",
              help="--quantize: by how many percent the mean absolute error of any other "
                   "output may grow against the Keras model's.")
@click.option("--samples", type=click.IntRange(min=1), default=32, show_default=True,
              help="How many samples of the run's data the verification runs.")
@click.option("--force", is_flag=True, help="Replace an earlier export at the output path.")
@click.option("--verify-only", is_flag=True,
              help="Do not export: verify the artifact already at the output path.")
@click.option("--no-safe-mode", "unsafe", is_flag=True, help=SAFE_MODE_HELP)
@click.pass_context
def export(ctx: click.Context, run_dir: Path, fmt: str, output: Path | None, checkpoint: str,
           tolerance: float, quantize: str | None, calibration_samples: int,
           accuracy_drop: float, mae_rise: float, samples: int, force: bool,
           verify_only: bool, unsafe: bool) -> int:
    """Export the model of RUN_DIR and verify the artifact: it is loaded with its own
    runtime (TensorFlow, the LiteRT interpreter, ONNX Runtime), run on samples of the
    run's validation data (else its training data), and each output is compared with the
    Keras model's. The largest difference per output is printed; one over --tolerance
    fails the command (exit 1).

    With --quantize (litert), the artifact is judged by its accuracy (a classifier) or
    mean absolute error (anything else) on the whole validation split, next to the Keras
    model's: --accuracy-drop and --mae-rise say how much it may lose.

    litert needs ai-edge-litert, onnx needs tf2onnx, onnx and onnxruntime:
    pip install 'cbrun[export]'.

    \b
      cbrun export runs/20261121-153012-digits-mlp --format onnx
      cbrun export runs/20261121-153012-digits-mlp -f litert -o phone/digits.tflite
      cbrun export runs/20261121-153012-digits-mlp -f litert --quantize int8
    """
    _check_quantize_options(ctx, fmt, quantize)
    run = open_run(run_dir)  # "not a run directory" before anything else
    missing = missing_modules(fmt)
    if missing:
        raise UsageError(extra_message(fmt, missing))
    chosen = choose_checkpoint(run, checkpoint, safe_mode=not unsafe)
    if output is None:
        check_tree(run_dir)
        target = default_target(run_dir, fmt, quantize)
        check_inside(run_dir, target.relative_to(run_dir), "the export")
    else:
        target = output
    check_target(target, fmt, force, verify_only)

    debug = ctx.find_root().obj.get("debug", False)
    from cbrun.engine.tfimport import import_tensorflow

    # Quietly, before anything imports it: its C++ start-up lines (CUDA probing, "failed
    # call to cuInit" on a machine without a GPU) are no news to someone exporting.
    import_tensorflow(debug)
    from cbrun.engine.export import export_run

    export_run(run, chosen, fmt, target, tolerance=tolerance, samples=samples,
               verify_only=verify_only, echo=click.echo, quantize=quantize,
               calibration_samples=calibration_samples, accuracy_drop=accuracy_drop,
               mae_rise=mae_rise, show=debug)
    return 0


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)


def _check_quantize_options(ctx: click.Context, fmt: str, quantize: str | None) -> None:
    """--quantize is LiteRT's; its options mean nothing without it, and --tolerance (a bound
    on each output value) nothing with it."""
    if quantize and fmt != "litert":
        raise UsageError(f"--quantize {quantize} is LiteRT's post-training quantization; "
                         f"--format {fmt} has none: use --format litert")
    flags = {"calibration_samples": "--calibration-samples", "accuracy_drop": "--accuracy-drop",
             "mae_rise": "--mae-rise"}
    if not quantize:
        given = [flag for name, flag in flags.items() if _given(ctx, name)]
        if given:
            raise UsageError(f"{given[0]} applies to --quantize int8|float16 exports; a float "
                             f"export is checked output by output with --tolerance")
        return
    if _given(ctx, "tolerance"):
        raise UsageError("--tolerance bounds a float export's outputs; a --quantize export "
                         "is judged by its validation metric: use --accuracy-drop "
                         "(classifier outputs) or --mae-rise (other outputs)")
    if quantize == "float16" and _given(ctx, "calibration_samples"):
        raise UsageError("--calibration-samples applies to --quantize int8; float16 "
                         "quantization needs no calibration")
