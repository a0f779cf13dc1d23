"""The Python API, for notebooks and scripts: as thin as the CLI, and the same code.

    import cbrun
    run = cbrun.train("configs/digits.yaml", overrides=["fit.epochs=3"])
    run.status, run.history[-1], run.checkpoints
    model = run.model("best")
    cbrun.resume(run.run_dir, epochs=6)
    cbrun.load_run("runs/20261130-031500-digits").evaluate()

`train` and `resume` call what `cbrun train` and `cbrun resume` call
(cbrun/commands/train.py `train_config`, cbrun/commands/resume.py `resume_run`); evaluate
and predict call what their commands call. Errors are cbrun exceptions (ConfigError,
UsageError, RunError), never SystemExit. Importing this module does not import
TensorFlow; training, loading a model, evaluating and predicting do.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cbrun.errors import EXIT_SIGINT, RunError, UsageError
from cbrun.run.checkpoints import Checkpoint, choose_checkpoint, open_run
from cbrun.run.handle import OpenRun
from cbrun.run.rundir import LOG_FILE


def train(config: str | Path | Sequence[str | Path], overrides: Sequence[str] = (), *,
          runs_dir: str | Path = "runs", quiet: bool = False) -> Run:
    """Train the model a YAML config declares, as `cbrun train CONFIG --set ...` does; the
    finished run. `config`: a path, or a list of paths merged in order. `overrides`:
    "fit.epochs=3" strings, as --set takes them."""
    from cbrun.commands.train import train_config

    files = [config] if isinstance(config, (str, Path)) else config
    if not isinstance(files, (list, tuple)) or not files or \
            not all(isinstance(f, (str, Path)) for f in files):
        raise UsageError(f"cbrun.train takes the path of a YAML config (or a list of them), "
                         f"not a {type(config).__name__}; its data paths start at its folder")
    overrides = list(overrides)
    argv = ["cbrun", "train", *map(str, files), *[a for o in overrides for a in ("--set", o)],
            "--runs-dir", str(runs_dir)]
    code, run_dir = train_config([Path(f) for f in files], overrides, Path(runs_dir),
                                 quiet=quiet, argv=argv)
    return _finished(run_dir, code)


def resume(run_dir: str | Path, *, epochs: int | None = None,
           continue_after_early_stop: bool = False, overrides: Sequence[str] = (),
           quiet: bool = False) -> Run:
    """Continue a run exactly where it stopped, as `cbrun resume RUN_DIR` does."""
    from cbrun.commands.resume import resume_run

    if epochs is not None and (type(epochs) is not int or epochs < 1):
        raise UsageError(f"epochs must be a whole number of at least 1, got {epochs!r}")
    overrides = list(overrides)
    argv = ["cbrun", "resume", str(run_dir), *(["--epochs", str(epochs)] if epochs else []),
            *(["--continue-after-early-stop"] if continue_after_early_stop else []),
            *[a for o in overrides for a in ("--set", o)]]
    code = resume_run(Path(run_dir), epochs, continue_after_early_stop, overrides,
                      quiet=quiet, argv=argv)
    return _finished(Path(run_dir), code)


def _finished(run_dir: Path, code: int) -> Run:
    if code == EXIT_SIGINT:
        raise KeyboardInterrupt(f"{run_dir} was interrupted; cbrun.resume({str(run_dir)!r}) "
                                "continues it")
    run = load_run(run_dir)
    if code != 0:
        raise RunError(f"the run {run_dir} ended {run.status}: {run.record.error}")
    return run


def load_run(run_dir: str | Path) -> Run:
    """A run directory: its config, record, history (log.csv as rows) and checkpoints; the
    model is loaded when asked for (`run.model()`)."""
    return Run(open_run(Path(run_dir)))


@dataclass
class Run:
    """A run, as `cbrun.load_run` reads it."""

    opened: OpenRun = field(repr=False)

    def __repr__(self) -> str:
        return (f"Run({str(self.run_dir)!r}, status={self.status!r}, "
                f"epochs_done={self.record.epochs_done})")

    @property
    def run_dir(self) -> Path:
        return self.opened.run_dir

    @property
    def config(self) -> Any:
        """The resolved config (cbrun.config.root.RunConfig), every default filled in."""
        return self.opened.config

    @property
    def record(self) -> Any:
        """run.json (cbrun.run.record.RunFile): status, epochs, best, test metrics, segments."""
        return self.opened.record.file

    @property
    def status(self) -> str | None:
        return self.record.status

    @property
    def history(self) -> list[dict[str, float | int | None]]:
        """log.csv, one dict per row, values as numbers (`epoch` 0-based as Keras writes
        it; None where a cell is NA)."""
        path = self.run_dir / LOG_FILE
        if not path.is_file():
            return []
        with path.open(newline="") as handle:
            return [{key: _number(key, value) for key, value in row.items()}
                    for row in csv.DictReader(handle)]

    @property
    def checkpoints(self) -> list[Path]:
        """The model files in the run: model.keras and what ModelCheckpoint wrote."""
        from cbrun.run.runfiles import checkpoint_files

        return checkpoint_files(self.run_dir, self.config)

    def checkpoint(self, which: str = "last", safe_mode: bool = True) -> Checkpoint:
        """What `last`, `best` or a file name: the file, and the epoch when known.
        `safe_mode=False` loads a .keras file the run did not write even if it holds code
        (cbrun/run/checkpoints.py)."""
        return choose_checkpoint(self.opened, which, safe_mode)

    def model(self, checkpoint: str = "last", compile: bool = True,
              safe_mode: bool = True) -> Any:
        """The Keras model at `checkpoint` (last, best or a file), compiled as the run was."""
        from cbrun.engine.tfimport import import_tensorflow

        chosen = self.checkpoint(checkpoint, safe_mode)
        import_tensorflow()
        from cbrun.engine.runmodel import load_run_model

        return load_run_model(self.opened, chosen, compile=compile)

    def evaluate(self, split: str | None = None, data: str | Path | None = None,
                 checkpoint: str = "last", safe_mode: bool = True) -> Any:
        """What `cbrun evaluate` computes (cbrun.run.evaluation.Evaluation)."""
        from cbrun.engine.tfimport import import_tensorflow

        chosen = self.checkpoint(checkpoint, safe_mode)
        import_tensorflow()
        from cbrun.engine.evaluate import evaluate_run

        return evaluate_run(self.opened, chosen, split, Path(data) if data else None)

    def predict(self, source: str | Path, top_k: int = 1,
                checkpoint: str = "last", safe_mode: bool = True,
                keep: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
        """What `cbrun predict` writes, as {column: numpy array}; `keep`: columns of a
        table `source` passed through (`predict --keep`)."""
        from cbrun.engine.tfimport import import_tensorflow

        chosen = self.checkpoint(checkpoint, safe_mode)
        import_tensorflow()
        from cbrun.engine.predict import predict_run

        columns, _, inputs = predict_run(self.opened, chosen, Path(source), top_k,
                                         tuple(keep))
        for note in inputs.notes:  # what the command prints as `note:` lines
            warnings.warn(note, stacklevel=2)
        return columns


def _number(key: str, value: str) -> float | int | None:
    if value in ("", "NA"):
        return None
    if key == "epoch":
        return int(value)
    try:
        return float(value)
    except ValueError:
        return None
