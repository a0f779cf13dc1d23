"""`cbrun lr-find CONFIG`: an exponential sweep of the learning rate over a few hundred
batches of the config's model and data, the loss drawn (PNG and terminal), a suggested rate
and the `--set` that trains with it. Nothing is kept but the PNG.

The config, the options and the PNG's path are checked before TensorFlow loads, as train
checks them; the sweep is cbrun/engine/lrfind.py, the curve cbrun/plotting/lrcurve.py.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import click

from cbrun.commands.common import fill_positions
from cbrun.config.compile import OptimizerSpec, optimizer_class
from cbrun.config.load import load_config
from cbrun.errors import ConfigError, RunError, UsageError
from cbrun.plotting.lrcurve import draw_png, render, set_value, summary
from cbrun.run.outpath import check_output_file, replace_with

DEFAULT_STEPS = 200
DEFAULT_LOW, DEFAULT_HIGH = 1e-7, 10.0  # fastai's range


@click.command("lr-find")
@click.argument("config_path", metavar="CONFIG...", nargs=-1, required=True,
                type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, as for train (repeatable).")
@click.option("--steps", type=click.IntRange(min=20), default=DEFAULT_STEPS,
              show_default=True,
              help="Batches in the sweep (the training data is passed over again as needed).")
@click.option("--min-lr", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_LOW,
              show_default=True, help="The learning rate of the first batch.")
@click.option("--max-lr", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_HIGH,
              show_default=True,
              help="The learning rate of the last batch (the sweep stops sooner where the "
                   "loss diverges).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="The PNG of the curve. Defaults to lr-find-<config name>.png here.")
@click.option("--force", is_flag=True, help="Replace the PNG if it exists.")
@click.pass_context
def lr_find(ctx: click.Context, config_path: tuple[Path, ...], overrides: tuple[str, ...],
            steps: int, min_lr: float, max_lr: float, output: Path | None,
            force: bool) -> int:
    """Find a learning rate for CONFIG: train its model on its training data for --steps
    batches while the rate grows exponentially from --min-lr to --max-lr, draw the
    smoothed loss against the rate, and suggest the rate where the loss falls fastest
    (after Lightning's and fastai's lr_find). The weights are thrown away: nothing is kept
    but the PNG.

    \b
      cbrun lr-find configs/digits.yaml
      cbrun lr-find configs/digits.yaml --steps 300 -o digits-lr.png
    """
    if min_lr >= max_lr:
        raise UsageError(f"--min-lr {min_lr:g} must be below --max-lr {max_lr:g}")
    loaded = load_config(list(config_path), overrides, check_data_files=True)
    config = loaded.config
    target = output or Path(f"lr-find-{config.name}.png")
    if target.suffix.lower() != ".png":
        raise UsageError(f"-o {target}: the plot is a PNG; name a file ending in .png")
    check_output_file(target, force)
    spec = config.compile.optimizer
    optimizer = optimizer_class(spec) if isinstance(spec, str) else spec.type
    batch_size = config.data.batch_size
    accumulated = None if isinstance(spec, str) else (spec.model_extra or {}).get(
        "gradient_accumulation_steps")
    if accumulated:
        # The rate changes every batch, the weights once in `accumulated`: the curve would
        # mix rates and read as noise.
        raise UsageError(
            f"lr-find sets the rate at every batch, but with gradient_accumulation_steps "
            f"{accumulated} the weights change once in {accumulated} batches; find the rate "
            f"for the batch it stands for: --set compile.optimizer.gradient_accumulation_steps"
            f"=null --set data.batch_size={accumulated * batch_size}")
    from cbrun.engine.tfimport import choose_backend, import_tensorflow

    # The config's backend: the rate is found for the arithmetic the run will train with
    # (refused in a process whose Keras runs on another).
    choose_backend(config.backend, strict=True)
    debug = ctx.find_root().obj.get("debug", False)
    import_tensorflow(debug, backend=config.backend)
    import keras

    on = keras.backend.backend()
    click.echo(f"lr-find: {config.name}, {optimizer}, {steps} batches of {batch_size}, "
               f"learning rate {min_lr:.3g} to {max_lr:.3g}"
               + ("" if on == "tensorflow" else f", on {on}"))
    from rich.console import Console

    from cbrun.engine.lrfind import sweep

    with Console(stderr=True).status("") as shown:
        try:
            curve = sweep(config, loaded.config_dir, steps=steps, low=min_lr, high=max_lr,
                          progress=lambda done: shown.update(f"lr-find: batch {done}/{steps}"))
        except ConfigError as exc:
            raise fill_positions(exc, loaded.positions) from None
    width = min(shutil.get_terminal_size((100, 24)).columns, 100)
    click.echo(render(curve, width=width, height=20), nl=False)
    for line in summary(curve, steps):
        click.echo(line)
    replace_with(target, lambda path: draw_png(
        curve, path, f"lr-find: {config.name} ({optimizer}, batch {batch_size})"))
    click.echo(f"plot: {target}")
    suggested = curve.suggestion()
    if suggested is None:
        raise RunError("the loss never fell over the sweep, so there is no rate to suggest; "
                       "try a wider range (--min-lr, --max-lr) or more --steps")
    value = set_value(None if isinstance(spec, OptimizerSpec) else optimizer, suggested)
    command = ["cbrun", "train", *map(str, config_path),
               *[part for text in overrides for part in ("--set", text)], "--set", value]
    click.echo(f"suggested learning rate: {suggested:.3g} (where the smoothed loss falls "
               f"fastest)")
    click.echo(f"train with it: {shlex.join(command)}")
    return 0
