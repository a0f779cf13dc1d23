"""The `cbrun` command line.

Subcommands load lazily (click's LazyGroup pattern): `cbrun --help` or `cbrun validate`
must not pay the ~4 s TensorFlow import that `cbrun train` needs.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import sys
import tempfile
import traceback

import click

from cbrun import __version__
from cbrun.errors import CbrunError
from cbrun.process import set_whole_process

# One line per command, imported only when it runs (docs/ARCHITECTURE.md, "Adding a
# command").
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("cbrun.commands.train:train", "Train a model from a YAML config."),
    "resume": ("cbrun.commands.resume:resume", "Continue an interrupted run exactly."),
    "validate": ("cbrun.commands.validate:validate", "Check configs without training."),
    "config": ("cbrun.commands.config:config", "Show a config as cbrun reads it, with where each value comes from."),
    "init": ("cbrun.commands.init:init", "Write a starter config for a table, images or npz."),
    "data": ("cbrun.commands.data:data",
             "Report on data: columns, classes per split, duplicates, leakage (data check)."),
    "evaluate": ("cbrun.commands.evaluate:evaluate",
                 "Evaluate a run's model: metrics and confusion matrix."),
    "predict": ("cbrun.commands.predict:predict",
                "Predict with a run's model: one row per sample of a file."),
    "plot": ("cbrun.commands.plot:plot", "Plot the curves of one or more runs."),
    "runs": ("cbrun.commands.runs:runs", "List runs with their status and best value."),
    "schema": ("cbrun.commands.schema:schema", "Print the JSON Schema of the config."),
    "callbacks": ("cbrun.commands.callbacks:callbacks", "List callbacks and their parameters."),
    "sweep": ("cbrun.commands.sweep:sweep", "Search hyperparameters (Optuna); trials are runs."),
    "tensorboard": ("cbrun.commands.tensorboard:tensorboard",
                    "Start TensorBoard over runs, each named by its id."),
    "export": ("cbrun.commands.export:export",
               "Export a run's model to SavedModel, LiteRT or ONNX, verified."),
    "benchmark": ("cbrun.commands.benchmark:benchmark",
                  "Size, latency and validation metric of a run's model in each format."),
    "lr-find": ("cbrun.commands.lrfind:lr_find",
                "Sweep the learning rate over a few hundred batches and suggest one."),
    "completion": ("cbrun.commands.completion:completion",
                   "Print the shell completion script (bash, zsh, fish)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        target, _ = COMMANDS[name]
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing help text from the table keeps `--help` from importing every command.
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cbrun")
@click.option("--debug", is_flag=True, help="Show tracebacks for user errors too.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Train Keras models from YAML: validated callbacks, complete run directories,
    exact resume."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj.setdefault("argv", ["cbrun", *sys.argv[1:]])  # run.json records the command


def main(argv: list[str] | None = None) -> None:
    # The `cbrun` command itself, not a caller of main(argv) or of cbrun.api (process.py).
    set_whole_process(argv is None)
    scratch = _own_temp_folder() if argv is None else None
    try:
        code = _run(sys.argv[1:] if argv is None else argv)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if argv is None and _native_threads_possible():
        # This process trained (or began to load TensorFlow) and its run directory says how
        # it ended. Skip the interpreter's teardown, which TensorFlow's native threads can
        # crash (seen as exit -11 after Ctrl-C or SIGTERM). A signal now changes nothing.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _own_temp_folder() -> str | None:
    """The command's temporary files in a folder of its own, removed when it ends.
    AutoGraph writes a `__autograph_generated_file*.py` for each function it converts and
    deletes it at interpreter exit, which os._exit below skips: without this, every
    training left a dozen files in /tmp."""
    try:
        folder = tempfile.mkdtemp(prefix="cbrun-tmp-")
    except OSError:
        return None  # no writable temporary folder: Python's own choice stands
    tempfile.tempdir = folder
    return folder


def _native_threads_possible() -> bool:
    """Whether TensorFlow's native libraries may be loaded. Not `"tensorflow" in
    sys.modules`: an import interrupted by a signal is removed from sys.modules, while the
    libraries it loaded, and the threads they started, stay (cbrun/engine/tfimport.py is
    imported right before TensorFlow, so its presence marks the attempt)."""
    return any(name in sys.modules for name in ("cbrun.engine.tfimport", "tensorflow", "keras"))


def _run(args: list[str]) -> int:
    from cbrun.run.processes import launched_command

    try:
        # A command returns an int to choose its exit code (validate: 0 or 2, for instance).
        # run.json records the command; in a process of `--processes N`, its launcher's.
        result = cli.main(args=args, prog_name="cbrun", standalone_mode=False,
                          obj={"argv": launched_command() or ["cbrun", *args]})
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except CbrunError as exc:
        if "--debug" in args:
            traceback.print_exc()  # the traceback too, with the same exit code
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return result if isinstance(result, int) else 0
