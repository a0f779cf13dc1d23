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
from cbrun.run.exports import (
    DEFAULT_ACCURACY_DROP,
    DEFAULT_CALIBRATION,
    DEFAULT_MAE_RISE,
    FORMATS,
    INSTALL_HINT,
    remove_target,
)
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


def sample_inputs(split: Any, model: Any, count: int) -> Any:
    """Up to `count` samples of a split, as the model takes them. A loader's
    tf.data.Dataset gives its first batch."""
    from cbrun.engine.quality import as_model_takes, rows

    if split.dataset is None:
        return rows(split, np.arange(min(count, len(split))), model)
    x = next(iter(split.dataset))[0]
    x = {k: np.asarray(v)[:count] for k, v in x.items()} if isinstance(x, dict) \
        else np.asarray(x)[:count]
    return as_model_takes(x, model)


def calibration(train: Any, model: Any, count: int, seed: int) -> tuple[Callable, int]:
    """(the converter's representative dataset, how many samples it gives): up to `count`
    samples of the training split, one at a time, drawn with the run's seed so that a
    training split sorted by class still calibrates on every class. A loader's
    tf.data.Dataset gives its first samples."""
    from cbrun.engine.quality import batches, rows

    if train.dataset is None:
        total = len(train)
        picked = np.sort(np.random.default_rng(seed).choice(total, min(count, total),
                                                            replace=False))

        def draw():
            for row in picked:
                yield _one(rows(train, np.array([row]), model))

        return draw, len(picked)
    taken = [x for x, _ in _first_samples(batches(train, 1, model), count)]

    def given():
        yield from (_one(x) for x in taken)

    return given, len(taken)


def _first_samples(pairs, count: int):
    """The first `count` samples of batches, one sample per item."""
    found = []
    for x, y in pairs:
        size = len(next(iter(x.values())) if isinstance(x, dict) else x)
        for i in range(size):
            if len(found) == count:
                return found
            found.append(({k: v[i:i + 1] for k, v in x.items()} if isinstance(x, dict)
                          else x[i:i + 1], None))
    return found


def _one(x: Any) -> Any:
    # The converter takes a dict by input name, or a list in the signature's order.
    return x if isinstance(x, dict) else [x]


def converter_settings(quantize: str, representative: Callable | None) -> dict[str, Any]:
    """The TFLite converter's settings (`model.export(format="litert", **settings)`).

    int8: weights and activations in int8, their ranges measured on `representative`;
    inputs and outputs stay float32, so the artifact is called as the float one is. Dense
    layers get one scale per weight matrix rather than one per unit: per unit, the
    converter stores a float32 scale and an int64 zero point, 12 bytes, a fifth of the int8
    weights of a unit with 64 inputs (the digits MLP: 15.7 KiB per unit, 12.5 KiB per
    matrix, accuracy 96.9% and 97.2% against 96.7% in float32). Convolutions keep theirs.
    float16: weights stored in float16, computed in float32."""
    import tensorflow as tf

    if quantize == "float16":
        return {"optimizations": [tf.lite.Optimize.DEFAULT],
                "target_spec": {"supported_types": [tf.float16]}}
    return {"optimizations": [tf.lite.Optimize.DEFAULT],
            "representative_dataset": representative,
            "_experimental_disable_per_channel_quantization_for_dense_layers": True}


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


def _write(model: Any, fmt: str, target: Path, settings: dict[str, Any] | None = None,
           show: bool = False) -> float:
    """Export into a sibling first: an export that fails halfway leaves nothing at
    `target`, and an earlier artifact is replaced only by a complete one. `settings`: the
    LiteRT converter's (quantization). The converters' C++ log lines are held back
    (engine/native_log.py) unless `show`."""
    from cbrun.engine.native_log import held_stderr

    partial = target.with_name(f".{target.name}.partial{FORMATS[fmt][1]}")
    start = time.perf_counter()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_target(partial)
        with warnings.catch_warnings(), held_stderr(show):
            if fmt == "onnx" and _has_lookup_tables(model):
                _onnx_through_saved_model(model, partial)  # its SavedModel export too
            else:
                # Keras's own tf2onnx patch for NumPy 2 touches np.object; nothing for the
                # user.
                warnings.filterwarnings("ignore", message=".*np.object", category=FutureWarning)
                model.export(str(partial), format=KERAS_FORMATS[fmt], verbose=False,
                             **(settings or {}))
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
               echo: Callable[[str], None], quantize: str | None = None,
               calibration_samples: int = DEFAULT_CALIBRATION,
               accuracy_drop: float = DEFAULT_ACCURACY_DROP,
               mae_rise: float = DEFAULT_MAE_RISE, show: bool = False) -> None:
    """Export (unless `verify_only`) and verify. A float export must give the Keras
    model's outputs to within `tolerance`; a quantized one (`quantize`: int8 | float16, a
    LiteRT export) is judged by its validation metric against the Keras model's. `show`:
    let the converters' and runtimes' own log lines through (cbrun --debug)."""
    from cbrun.engine.exportcheck import compare, run_artifact
    from cbrun.engine.quality import scoring_split
    from cbrun.engine.runmodel import load_run_model
    from cbrun.engine.sources import data_for_run

    require(fmt)
    model = load_run_model(run, checkpoint, compile=False)
    echo(f"model: {checkpoint.label}")
    splits, _ = data_for_run(run)
    split_name, split = scoring_split(splits)
    x = sample_inputs(split, model, samples)
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
        settings, calibrated = None, ""
        if quantize:
            representative, count = (calibration(splits.train, model, calibration_samples,
                                                 run.config.seed)
                                     if quantize == "int8" else (None, 0))
            settings = converter_settings(quantize, representative)
            calibrated = f"; calibrated on {count} training samples" if count else ""
        seconds = _write(model, fmt, target, settings, show)
        echo(f"exported {fmt}{f' {quantize}' if quantize else ''} to {target} "
             f"({_size(target) / 1024:.0f} KiB, {seconds:.1f} s{calibrated})")
    got = run_artifact(fmt, target, x, show)
    differences = compare(expected, got, _output_names(model))
    if quantize:
        _judge_quantized(run, model, split_name, split, fmt, target, quantize, differences,
                         accuracy_drop=accuracy_drop, mae_rise=mae_rise, echo=echo, show=show)
        return
    count = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
    echo(f"verified on {count} {split_name} samples with {_RUNTIMES[fmt]}:")
    failed = []
    for name, diff in differences:
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


_FLOAT16_MAX = 65504


def _judge_quantized(run: OpenRun, model: Any, split_name: str, split: Any, fmt: str,
                     target: Path, quantize: str, differences: list[tuple[str, float]], *,
                     accuracy_drop: float, mae_rise: float, echo: Callable[[str], None],
                     show: bool) -> None:
    """A quantized model computes other numbers by design: whether it still does its job
    is its metric on the whole validation split next to the Keras model's (the largest
    output difference on the first samples is shown, not judged)."""
    from cbrun.engine.exportcheck import load_artifact, paired
    from cbrun.engine.quality import keras_predictor, output_names, score

    artifact = load_artifact(fmt, target, show)
    names = output_names(model)
    scored, count = score(run, model, split, {
        "keras": keras_predictor(model),
        "artifact": lambda x: paired(names, artifact(x))}, run.config.data.batch_size)
    echo(f"verified on {count} {split_name} samples with {_RUNTIMES[fmt]} ({quantize}), "
         f"against the Keras model:")
    # A split of n samples measures accuracy in steps of 100/n points: below one sample a
    # bound would refuse a single borderline sample that rounding tipped over (1 of 30
    # validation rows is 3.3 points).
    points = max(accuracy_drop, 100 / count) if count else accuracy_drop
    failed = []
    for theirs, ours, (_, diff) in zip(scored["artifact"], scored["keras"], differences,
                                       strict=True):
        over, said = quantized_loss(ours.metric, ours.value, theirs.value, points, mae_rise)
        echo(f"  {theirs.output}: {theirs.shown()} (Keras {ours.value:.4g}, {said}); largest "
             f"output difference {diff:.3g}" + ("  OVER the allowed loss" if over else ""))
        if over:
            failed.append(f"output {theirs.output} {said}")
    metrics = {s.metric for s in scored["keras"]}
    allowed = " and ".join(
        [f"{accuracy_drop:g} accuracy point{'s' * (accuracy_drop != 1)}"
         + (f" (one sample of {count}: {points:.2f} points)" if points > accuracy_drop else "")]
        * ("accuracy" in metrics) + [f"{mae_rise:g}% of the MAE"] * ("mae" in metrics))
    if failed:
        largest = max((float(np.max(np.abs(w))) for w in model.get_weights() if w.size),
                      default=0.0)
        if quantize == "int8":
            hint = "; --quantize float16 keeps more precision"
        elif largest > _FLOAT16_MAX:
            # A regression's output scaling in large units (a mean of 150,000) is a weight
            # float16 cannot write: the likely reason, and no other quantization will do.
            hint = (f"; this model holds a weight of {largest:.3g}, beyond float16's "
                    f"largest value {_FLOAT16_MAX:,} (the output scaling of a target in "
                    f"large units, typically): ship the float export")
        else:
            hint = ""
        raise RunError(f"{target} loses too much to {quantize} quantization: "
                       f"{'; '.join(failed)} (allowed: {allowed}; --accuracy-drop, "
                       f"--mae-rise{hint}); the artifact is left there for inspection, do "
                       f"not ship it")
    echo(f"ok: every output within {allowed} of the Keras model")


def quantized_loss(metric: str, keras_value: float, value: float, points: float,
                   mae_rise: float) -> tuple[bool, str]:
    """(whether the change is over what is allowed, the change in words): accuracy in
    points (-0.8 points is a loss of 0.8; `points` may be lost), MAE in percent of the Keras
    model's (it may grow by `mae_rise` percent). A NaN is over."""
    if metric == "accuracy":
        change = (value - keras_value) * 100
        return not -change <= points, f"{change:+.2f} points"
    if keras_value > 0:
        change = (value - keras_value) / keras_value * 100
    else:
        change = 0.0 if value == keras_value else float("inf")
    return not change <= mae_rise, f"{change:+.2f}% MAE"


def _output_names(model: Any) -> list[str]:
    from cbrun.engine.quality import output_names

    return output_names(model)


_RUNTIMES = {"saved_model": "tf.saved_model.load", "litert": "the LiteRT interpreter",
             "onnx": "ONNX Runtime"}
