"""Run an exported artifact with its own runtime, and compare it with the Keras model.

Each runtime takes the inputs by the names Keras gave them (the model's input names) and
names its outputs: by the model's output names when it has named outputs, else by
position (`output_0`, ... in TensorFlow's signatures; graph order in ONNX).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cbrun.engine.native_log import held_stderr
from cbrun.errors import RunError


def _by_name(x: Any, names: list[str]) -> dict[str, np.ndarray]:
    """The samples keyed by the artifact's input names."""
    if isinstance(x, dict):
        return {name: x[name] for name in names}
    if len(names) != 1:
        raise RunError(f"the artifact takes {len(names)} inputs ({', '.join(names)}), the "
                       f"run's data gives one")
    return {names[0]: x}


def _natural(names: list[str]) -> list[str]:
    """output_10 after output_9."""
    return sorted(names, key=lambda n: [int(p) if p.isdigit() else p
                                        for p in re.split(r"(\d+)", n)])


Runner = Callable[[Any], list[tuple[str, np.ndarray]]]


def _saved_model(path: Path) -> Runner:
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    names = list(serve.structured_input_signature[1])

    def run(x: Any) -> list[tuple[str, np.ndarray]]:
        out = serve(**{k: tf.constant(v) for k, v in _by_name(x, names).items()})
        return [(name, out[name].numpy()) for name in _natural(list(out))]

    return run


def _litert(path: Path) -> Runner:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner()
    names = list(runner.get_input_details())

    def run(x: Any) -> list[tuple[str, np.ndarray]]:
        try:
            out = runner(**_by_name(x, names))
        except RuntimeError as exc:
            # The converter keeps ops TFLite lacks (text ops) as TensorFlow ops for the Flex
            # delegate, which neither ai_edge_litert's nor TensorFlow's Python interpreter
            # has.
            if "Select TensorFlow op" not in str(exc):
                raise
            ops = sorted(set(re.findall(r"\((Flex\w+)\)", str(exc)))) or ["Flex ops"]
            raise RunError(
                f"the LiteRT interpreter cannot run {path}: it needs TensorFlow ops through "
                f"the Flex delegate ({', '.join(ops)}), which the interpreter here does not "
                f"have, so the export is not verified. A device runs it only with the Select "
                f"TF ops library (org.tensorflow:tensorflow-lite-select-tf-ops on Android)"
            ) from None
        return [(name, np.asarray(out[name])) for name in _natural(list(out))]

    return run


def _onnx(path: Path) -> Runner:
    import onnxruntime
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except (ort_errors.InvalidGraph, ort_errors.NotImplemented) as exc:
        message = str(exc).strip().splitlines()[0]
        op = re.search(r"No Op registered for (\w+)", message)
        why = (f"tf2onnx left TensorFlow's {op.group(1)} in the graph, and ONNX has no such "
               f"operator: this model cannot be exported to ONNX" if op else message)
        raise RunError(f"ONNX Runtime cannot load {path}: {why}") from None
    names = [i.name for i in session.get_inputs()]
    outputs = session.get_outputs()

    def run(x: Any) -> list[tuple[str, np.ndarray]]:
        out = session.run(None, _by_name(x, names))
        return [(o.name, value) for o, value in zip(outputs, out, strict=True)]

    return run


LOADERS = {"saved_model": _saved_model, "litert": _litert, "onnx": _onnx}


def load_artifact(fmt: str, path: Path, show: bool = False) -> Runner:
    """The artifact loaded by its runtime, as a function of the inputs that gives its
    outputs as (name, array) in its order. The runtimes' own log lines (LiteRT's XNNPACK
    notice) are held back unless `show` (cbrun --debug)."""
    with held_stderr(show):
        loaded = LOADERS[fmt](path)

    def run(x: Any) -> list[tuple[str, np.ndarray]]:
        with held_stderr(show):
            return loaded(x)

    return run


def run_artifact(fmt: str, path: Path, x: Any, show: bool = False
                 ) -> list[tuple[str, np.ndarray]]:
    """The artifact's outputs on `x`, as (name, array) in its order."""
    return load_artifact(fmt, path, show)(x)


def paired(output_names: list[str], got: list[tuple[str, np.ndarray]]
           ) -> list[tuple[str, np.ndarray]]:
    """The artifact's outputs under the Keras model's output names: by name where the
    artifact kept them, else by position."""
    if len(got) != len(output_names):
        raise RunError(f"the artifact has {len(got)} outputs, the model {len(output_names)}")
    found = dict(got)
    if set(found) == set(output_names):
        return [(name, found[name]) for name in output_names]
    return [(name, value) for name, (_, value) in zip(output_names, got, strict=True)]


def compare(expected: Any, got: list[tuple[str, np.ndarray]],
            output_names: list[str]) -> list[tuple[str, float]]:
    """(output name, largest difference) for each output of the Keras model: absolute
    where the model's value is within [-1, 1] (probabilities, scaled values), relative to
    it beyond (a price of 5000 computed in float32 differs by 1e-3 between two correct
    runtimes: float32 carries 7 digits, not 7 decimals). Outputs pair by name where the
    artifact kept the model's names, else by position."""
    if isinstance(expected, dict):
        wanted = {name: np.asarray(expected[name]) for name in output_names
                  if name in expected} or {k: np.asarray(v) for k, v in expected.items()}
    elif isinstance(expected, (list, tuple)):
        wanted = dict(zip(output_names, map(np.asarray, expected), strict=True))
    else:
        wanted = {output_names[0]: np.asarray(expected)}
    result = []
    for name, value in paired(list(wanted), got):
        value = np.asarray(value)
        if value.shape != wanted[name].shape:
            raise RunError(f"output {name}: the artifact gives shape {value.shape}, the model "
                           f"{wanted[name].shape}")
        reference = wanted[name].astype(np.float64)
        diff = np.abs(value.astype(np.float64) - reference) / np.maximum(1.0, np.abs(reference))
        result.append((name, float(diff.max()) if diff.size else 0.0))
    return result
