"""What a model's outputs mean, from the run's loss (numpy only): a class
index with a probability, or raw numbers. `cbrun evaluate` draws the confusion matrix of a
classifier from it; `cbrun predict` writes one row per sample with it.

An output classifies when its loss is a cross-entropy: `sparse_categorical_crossentropy`
(integer labels, one probability per class), `categorical_crossentropy` (one-hot labels)
or `binary_crossentropy` with one unit (class 1 when the probability is over 0.5). Class
names come from what the run's data source saved (data/classes.json, data/table.json),
else the class indexes stand for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cbrun.engine.sources import saved_artifacts

_SPARSE = ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy")
_ONE_HOT = ("categorical_crossentropy", "CategoricalCrossentropy")
_BINARY = ("binary_crossentropy", "BinaryCrossentropy")


@dataclass
class OutputTask:
    """One model output: its name (None for a model with one output), how its loss reads
    it, and the class names the run saved for it (None when it saved none)."""

    name: str | None
    kind: str  # sparse | onehot | binary | raw
    names: list[str] | None

    @property
    def classifies(self) -> bool:
        return self.kind != "raw"

    def probabilities(self, predicted: np.ndarray) -> np.ndarray:
        """(n, classes) probabilities; a binary output becomes [1 - p, p]."""
        predicted = np.asarray(predicted, dtype=np.float64).reshape(len(predicted), -1)
        if self.kind == "binary":
            return np.concatenate([1.0 - predicted[:, :1], predicted[:, :1]], axis=1)
        return predicted

    def class_ids(self, predicted: np.ndarray) -> np.ndarray:
        return np.argmax(self.probabilities(predicted), axis=1)

    def label_ids(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        if self.kind == "onehot":
            return np.argmax(labels.reshape(len(labels), -1), axis=1)
        if self.kind == "binary":
            return (labels.reshape(len(labels), -1)[:, 0] > 0.5).astype(np.int64)
        return labels.reshape(len(labels)).astype(np.int64)

    def class_names(self, count: int) -> list[str]:
        if self.names is not None and len(self.names) == count:
            return list(self.names)
        return [str(i) for i in range(count)]

    def columns(self, predicted: np.ndarray, top_k: int) -> dict[str, np.ndarray]:
        """{column: one value per sample}: class and probability (then class_2, ... up to
        top_k), or the raw outputs (output, or output_0, output_1, ... for several)."""
        prefix = f"{self.name}_" if self.name else ""
        if not self.classifies:
            flat = np.asarray(predicted).reshape(len(predicted), -1)
            if flat.shape[1] == 1:
                return {f"{prefix}output" if prefix else "output": flat[:, 0]}
            return {f"{prefix}output_{i}": flat[:, i] for i in range(flat.shape[1])}
        probs = self.probabilities(predicted)
        names = np.array(self.class_names(probs.shape[1]), dtype=object)
        order = np.argsort(-probs, axis=1, kind="stable")[:, :min(top_k, probs.shape[1])]
        out = {}
        for rank in range(order.shape[1]):
            suffix = "" if rank == 0 else f"_{rank + 1}"
            picked = order[:, rank]
            out[f"{prefix}class{suffix}"] = names[picked]
            out[f"{prefix}probability{suffix}"] = probs[np.arange(len(probs)), picked]
        return out


def _loss_name(value: Any) -> str:
    return value if isinstance(value, str) else value.type


def _kind(loss: Any, units: int) -> str:
    name = _loss_name(loss)
    if name in _SPARSE:
        return "sparse"
    if name in _ONE_HOT:
        return "onehot"
    if name in _BINARY and units == 1:
        return "binary"
    return "raw"


def output_tasks(config: Any, run_dir: Path, outputs: list[tuple[str, int]]) -> list[OutputTask]:
    """One task per model output, given as (name, units of its last axis) in the model's
    order."""
    artifacts = saved_artifacts(run_dir)
    table = artifacts.get("table.json") or {}
    classes = table.get("classes", {})
    loss = config.compile.loss
    tasks = []
    for name, units in outputs:
        one = len(outputs) == 1
        this = loss if not isinstance(loss, dict) else loss.get(name, next(iter(loss.values())))
        if "classes.json" in artifacts:
            names = list(artifacts["classes.json"])
        else:
            column = table["labels"][0] if one and table.get("labels") else name
            names = classes.get(column)
            names = [str(n) for n in names] if names is not None else None
        tasks.append(OutputTask(None if one else name, _kind(this, units), names))
    return tasks


def model_outputs(model: Any) -> list[tuple[str, int]]:
    """(name, units of the last axis) of each output of a built Keras model."""
    shapes = [tuple(t.shape) for t in model.outputs]
    # A Sequential model has one output and no output_names.
    names = getattr(model, "output_names", None) or ["output"] * len(shapes)
    return [(name, int(shape[-1]) if len(shape) > 1 and shape[-1] else 1)
            for name, shape in zip(names, shapes, strict=True)]


def by_output(predicted: Any, names: list[str]) -> list[np.ndarray]:
    """model.predict's result as one array per output, in the model's order (Keras gives
    an array for one output, a list or a dict for several)."""
    if isinstance(predicted, dict):
        return [np.asarray(predicted[name]) for name in names]
    if isinstance(predicted, (list, tuple)):
        return [np.asarray(p) for p in predicted]
    return [np.asarray(predicted)]
