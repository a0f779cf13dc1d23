"""Export a run's model with Keras's `model.export`, then verify the artifact.

An export is only as good as its agreement with the model: the artifact is loaded with its
own runtime (cbrun/engine/exportcheck.py), run on samples of the run's data, and compared
output by output with the Keras model.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cbrun.errors import RunError, UsageError
from cbrun.run.checkpoints import Checkpoint
from cbrun.run.exports import FORMATS, INSTALL_HINT, remove_target
from cbrun.run.handle import OpenRun

# cbrun's format names -> Keras's `model.export(format=...)`.
KERAS_FORMATS = {"saved_model": "tf_saved_model", "litert": "litert", "onnx": "onnx"}


def require(fmt: str) -> None:
    """Import what `fmt` needs; a module of the export extra that is missing is a usage
    error naming the extra, anything else that breaks the import is a bug to show."""
    import importlib

    needed = FORMATS[fmt][2]
    for name in needed:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in needed:
                raise
            raise UsageError(f"--format {fmt} needs {', '.join(needed)} from the export "
                             f"extra ({exc.name} not installed): {INSTALL_HINT}") from None


def sample_inputs(run: OpenRun, model: Any, count: int) -> tuple[Any, str]:
    """Up to `count` samples of the run's validation split (else train), as the model
    takes them, and the split's name."""
    from cbrun.engine.sources import data_for_run

    splits, _ = data_for_run(run)
    name, split = next((n, s) for n, s in (("validation", splits.validation),
                                           ("train", splits.train)) if s is not None)
    if split.dataset is not None:
        x = next(iter(split.dataset))[0]
        x = {k: np.asarray(v)[:count] for k, v in x.items()} if isinstance(x, dict) \
            else np.asarray(x)[:count]
    else:
        rows = np.arange(min(count, len(split)))
        x = {k: np.asarray(v[rows]) for k, v in split.x.items()} if isinstance(split.x, dict) \
            else np.asarray(split.x[rows])
    dtypes = {t.name: t.dtype for t in model.inputs}
    if isinstance(x, dict):
        return {k: _as_dtype(v, dtypes.get(k)) for k, v in x.items()}, name
    return _as_dtype(x, model.inputs[0].dtype), name


def _as_dtype(values: np.ndarray, dtype: str | None) -> np.ndarray:
    # Text stays text (str objects, which every runtime takes for a string tensor).
    if dtype == "string":
        return values.astype(object)
    return values.astype(dtype) if dtype else values


def _mixed_policy(model: Any) -> str | None:
    names = {layer.dtype_policy.name for layer in model._flatten_layers()}
    return next((name for name in sorted(names) if name.startswith("mixed_")), None)


def _float32_copy(model: Any) -> Any:
    """The model with float32 computation throughout, same weights. A mixed-precision
    graph is not what serving wants: Keras's ONNX export requires float32, and the TFLite
    converter keeps float16 arithmetic as TensorFlow (Flex) ops no interpreter here runs."""
    import keras

    def float32(layer: Any) -> Any:
        config = layer.get_config()
        if layer.dtype_policy.name.startswith("mixed_"):
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=float32, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def _outputs(model: Any, x: Any) -> list[tuple[str, Any]]:
    out = model(x, training=False)
    if isinstance(out, dict):
        return list(out.items())
    values = out if isinstance(out, (list, tuple)) else [out]
    return list(zip(_output_names(model), values, strict=True))


def _captured_tensors_as_constants(model: Any) -> None:
    """tf2onnx 1.17's `convert.from_function`, which Keras's ONNX export calls, declares
    every tensor the traced function captures as an ONNX input, and freezes only variables:
    a tensor a layer holds as a plain attribute (an adapted Normalization's `mean` and
    `variance`) becomes an input nobody can feed, its value lost. Handed to the tracer as a
    NumPy array, the same value becomes a constant of the graph. The Keras model computes
    the same either way; the verification compares against its outputs from before."""
    import tensorflow as tf

    for layer in model._flatten_layers():  # every layer, nested models' too
        for name, value in list(vars(layer).items()):
            if isinstance(value, tf.Tensor) and not isinstance(value, tf.Variable):
                setattr(layer, name, value.numpy())


def _has_lookup_tables(model: Any) -> bool:
    """Whether the model maps strings through a hash table (StringLookup, IntegerLookup,
    TextVectorization): the categories `cbrun init` encodes inside the model."""
    import keras

    kinds = (keras.layers.StringLookup, keras.layers.IntegerLookup,
             keras.layers.TextVectorization)
    return any(isinstance(layer, kinds) for layer in model._flatten_layers())


def _onnx_through_saved_model(model: Any, target: Path) -> None:
    """ONNX for a model with lookup tables. Keras's ONNX export goes through tf2onnx's
    `from_function`, which sees a table only as a captured resource and fails ("Could not
    determine table shared name"); from a SavedModel, tf2onnx reads the tables' contents and
    writes each lookup as ONNX-ML's CategoryMapper, so the ONNX model takes the raw strings.
    tf2onnx offers that path as its command line, which runs here in its own process."""
    import shutil
    import subprocess
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix=".onnx-", dir=target.parent))
    try:
        model.export(str(folder / "saved_model"), format="tf_saved_model", verbose=False)
        done = subprocess.run(
            [sys.executable, "-m", "tf2onnx.convert", "--saved-model",
             str(folder / "saved_model"), "--output", str(target)],
            capture_output=True, text=True, check=False,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        if done.returncode != 0 or not target.exists():
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            raise RunError(f"tf2onnx could not convert the model to ONNX: "
                           f"{lines[-1] if lines else f'exit code {done.returncode}'}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _write(model: Any, fmt: str, target: Path) -> float:
    """Export into a sibling first: an export that fails halfway leaves nothing at
    `target`, and an earlier artifact is replaced only by a complete one."""
    partial = target.with_name(f".{target.name}.partial{FORMATS[fmt][1]}")
    start = time.perf_counter()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_target(partial)
        if fmt == "onnx" and _has_lookup_tables(model):
            _onnx_through_saved_model(model, partial)
        else:
            with warnings.catch_warnings():
                # Keras's own tf2onnx patch for NumPy 2 touches np.object; nothing for the
                # user.
                warnings.filterwarnings("ignore", message=".*np.object", category=FutureWarning)
                model.export(str(partial), format=KERAS_FORMATS[fmt], verbose=False)
        seconds = time.perf_counter() - start
        remove_target(target)
        os.replace(partial, target)
    except OSError as exc:  # a full disk, a folder made read-only after the check
        _discard(partial)
        raise RunError(f"could not write {target}: {exc.strerror or exc}") from None
    except BaseException:
        _discard(partial)
        raise
    return seconds


def _discard(partial: Path) -> None:
    try:
        remove_target(partial)
    except OSError:
        pass


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def export_run(run: OpenRun, checkpoint: Checkpoint, fmt: str, target: Path, *,
               tolerance: float, samples: int, verify_only: bool,
               echo: Callable[[str], None]) -> None:
    from cbrun.engine.exportcheck import compare, run_artifact
    from cbrun.engine.runmodel import load_run_model

    require(fmt)
    model = load_run_model(run, checkpoint, compile=False)
    echo(f"model: {checkpoint.label}")
    x, split = sample_inputs(run, model, samples)
    mixed = _mixed_policy(model)
    if mixed:
        trained = model(x, training=False)
        model = _float32_copy(model)
        drift = max(d for _, d in compare(trained, _outputs(model, x), _output_names(model)))
        echo(f"the run computes in {mixed}: exported in float32 with the same weights "
             f"(largest difference from the {mixed} model on these samples {drift:.3g})")
    # Before exporting: Keras's ONNX export refuses a loaded model that was never called.
    expected = model(x, training=False)
    if not verify_only:
        if fmt == "onnx":
            _captured_tensors_as_constants(model)
        seconds = _write(model, fmt, target)
        echo(f"exported {fmt} to {target} ({_size(target) / 1024:.0f} KiB, {seconds:.1f} s)")
    got = run_artifact(fmt, target, x)
    count = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
    echo(f"verified on {count} {split} samples with {_RUNTIMES[fmt]}:")
    failed = []
    for name, diff in compare(expected, got, _output_names(model)):
        over = not diff <= tolerance  # NaN fails too
        echo(f"  {name}: largest difference {diff:.3g}"
             + (f"  OVER the tolerance {tolerance:g}" if over else ""))
        if over:
            failed.append(f"{name} by {diff:.3g}")
    if failed:
        raise RunError(f"{target} does not match the model: output {', '.join(failed)} "
                       f"(tolerance {tolerance:g}); the artifact is left there for "
                       f"inspection, do not ship it")
    echo(f"ok: every output within {tolerance:g}")


def _output_names(model: Any) -> list[str]:
    # A functional model names its outputs; a Sequential one has one, named by position.
    return list(getattr(model, "output_names", None) or
                [f"output_{i}" for i in range(len(model.outputs))])


_RUNTIMES = {"saved_model": "tf.saved_model.load", "litert": "the LiteRT interpreter",
             "onnx": "ONNX Runtime"}
