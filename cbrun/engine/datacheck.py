"""The classic mismatches between data and model, caught before the first batch with a
message, not a Keras traceback from inside the compiled step: sample shapes against the
model's inputs, label range against the last layer, sparse labels against one-hot losses."""

from __future__ import annotations

from typing import Any

import numpy as np

from cbrun.engine.sources import Split, Splits
from cbrun.errors import ConfigError, Problem

SPARSE_LOSSES = {"sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"}
ONE_HOT_LOSSES = {"categorical_crossentropy", "CategoricalCrossentropy"}
BINARY_LOSSES = {"binary_crossentropy", "BinaryCrossentropy", "binary_focal_crossentropy",
                 "BinaryFocalCrossentropy"}


def _sample_shapes(split: Split) -> dict[str | None, tuple[list[int], str]]:
    """{input name or None: (shape of one sample, dtype kind)}."""
    if split.images is not None:
        return {None: ([*split.x.size, split.x.channels], "f")}
    if split.dataset is not None:
        spec = split.dataset.element_spec[0]
        specs = spec if isinstance(spec, dict) else {None: spec}
        return {k: (list(s.shape[1:]), "U" if s.dtype.name == "string" else
                    "f" if s.dtype.is_floating else "i") for k, s in specs.items()}
    xs = split.x if isinstance(split.x, dict) else {None: split.x}
    return {k: (list(v.shape[1:]), v.dtype.kind) for k, v in xs.items()}


def _names(keys) -> str:
    return ", ".join(sorted(str(k) for k in keys))


def _input_problems(which: str, split: Split, model: Any, stack: bool,
                    advice: bool = True) -> list[Problem]:
    """The data's inputs against the model's, by name: one unnamed array feeds a model with
    one input, named arrays feed the inputs of those names. Without `advice` (a new file
    for a trained model) the messages say what the model takes, not how to change it."""
    expected = {t.name: list(t.shape[1:]) for t in model.inputs}
    text = {t.name for t in model.inputs if t.dtype == "string"}
    given = _sample_shapes(split)
    if None in given and len(expected) == 1:
        given = {next(iter(expected)): given[None]}
    if set(given) != set(expected):
        if None in given:
            message = (f"the {which} data has one input but the model takes inputs "
                       f"{_names(expected)}; name the arrays for each input")
        elif len(expected) == 1:
            message = (f"the {which} data has inputs {_names(given)} but the model takes one "
                       f"input ({_names(expected)})")
        else:
            message = (f"the {which} inputs are named {_names(given)}, but the model's inputs "
                       f"are {_names(expected)}")
        return [Problem(loc=("data",), message=message)]
    problems = []
    for name, (shape, kind) in given.items():
        want = expected[name]
        label = f"input {name!r}" if len(expected) > 1 else "samples"
        are = "are" if label == "samples" else "is"
        dtype_key = ("model", "input_dtype") if stack else ("model", "inputs", name, "dtype")
        if name in text and kind not in "US":
            problems.append(Problem(loc=dtype_key, given="string", message=(
                f"the model's {label.replace('samples', 'input')} is declared string, but the "
                f"{which} {label} are numbers")))
        elif name not in text and kind in "US":
            problems.append(Problem(loc=dtype_key, message=(
                f"the {which} {label} {are} text; declare the input's dtype as string and let "
                "a TextVectorization or StringLookup layer (adapt: true) turn it into numbers"
                if advice else f"the {which} {label} {are} text, but the model takes numbers")))
        elif kind not in "biufUS":
            problems.append(Problem(loc=("data",), message=(
                f"the {which} {label} {are} not numbers (dtype kind {kind!r}); a model needs "
                "numbers")))
        elif len(shape) != len(want) or any(w is not None and w != s
                                            for s, w in zip(shape, want)):
            loc = ("model", "input_shape") if stack else ("data",)
            problems.append(Problem(loc=loc, given=want, message=(
                f"the {which} {label} {'have' if are == 'are' else 'has'} shape {shape}, but "
                f"the model expects {'input_shape ' if loc[0] == 'model' else 'shape '}"
                f"{list(want)}")))
    return problems


def _loss_name(loss: Any) -> str:
    return loss if isinstance(loss, str) else loss.type


def _label_problems(which: str, y: np.ndarray, loss: str, shape: list, last: tuple,
                    output: str | None, advice: bool = True) -> list[Problem]:
    problems = []
    units = shape[-1] if shape else 1
    what = f"{which} labels" if output is None else f"{which} labels of output {output!r}"
    loss_key = ("compile", "loss") if output is None else ("compile", "loss", output)
    if y.dtype.kind not in "biuf":
        return [Problem(loc=("data",), message=f"the {what} are {y.dtype} values; "
                                               "encode them as integers 0..n-1")]
    flat = y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)
    given = list(y.shape[1:])
    if loss in SPARSE_LOSSES:
        ids_fit = given in (shape[:-1], shape[:-1] + [1]) or (given == [] and len(shape) == 1)
        if not ids_fit and given == shape and units > 1:
            problems.append(Problem(loc=loss_key, given=loss, message=(
                f"{loss} expects one class id per sample, but the {what} have shape "
                f"{given} (one-hot?)"
                + ("; use categorical_crossentropy for one-hot labels" if advice else ""))))
        elif not ids_fit and None not in shape:
            problems.append(Problem(loc=last, message=(
                f"the {what} have shape {given or [1]} per sample, but the "
                f"{'last layer' if output is None else 'layer ' + repr(output)} gives "
                f"{shape}, which takes class ids of shape {shape[:-1] or [1]}")))
        elif len(y) and (y.min() < 0 or y.max() >= units):
            problems.append(Problem(loc=last, message=(
                f"the {what} run from {y.min()} to {y.max()}, but the "
                f"{'last layer' if output is None else 'layer ' + repr(output)} has "
                f"{units} outputs (class ids must be 0..{units - 1})")))
    elif loss in ONE_HOT_LOSSES and flat and units > 1:
        problems.append(Problem(loc=loss_key, given=loss, message=(
            f"{loss} expects one-hot labels of width {units}, but the {what} are one "
            "class id per sample" + ("; use sparse_categorical_crossentropy" if advice else
                                     ""))))
    elif loss in BINARY_LOSSES and len(y) and (y.min() < 0 or y.max() > 1):
        # Keras trains on it without a word: a loss of labels it was never meant for.
        problems.append(Problem(loc=loss_key, given=loss, message=(
            f"{loss} takes labels 0 and 1 (or probabilities), but the {what} run from "
            f"{y.min():g} to {y.max():g}" + (
                f"; for {int(y.max()) + 1} classes use sparse_categorical_crossentropy "
                f"and a last layer of {int(y.max()) + 1} units with softmax"
                if advice and y.dtype.kind in "iu" and y.min() >= 0 else ""))))
    elif None not in shape and (list(y.shape[1:]) or [1]) != (shape or [1]):
        # Keras would broadcast (n, 4) targets against (n, 1) outputs and train on a loss
        # that means nothing.
        problems.append(Problem(loc=last, message=(
            f"the {what} have shape {list(y.shape[1:]) or [1]} per sample, but the "
            f"{'last layer' if output is None else 'layer ' + repr(output)} gives "
            f"{shape or [1]}" + ("; make the layer's output match the targets" if advice
                                 else ""))))
    return problems


def _output_layer_loc(config: Any, name: str | None) -> tuple:
    """Where a class-count mismatch is fixed: the stack's last layer, or the graph layer
    that is the output; other model kinds have no layer in the config."""
    model = config.model
    kind = getattr(model, "kind", "stack")
    if kind == "stack":
        return ("model", "layers", len(model.layers) - 1)
    if kind == "graph":
        for index, node in enumerate(model.layers):
            if node.name == name:
                return ("model", "layers", index)
    return ("model",)


def _labels(y: Any) -> np.ndarray:
    """The labels as an array; a streamed table's as the small array of its smallest and
    largest value (`digest`), all that the checks read of them."""
    return y.digest() if hasattr(y, "digest") else np.asarray(y)


def _labels_by_output(split: Split, config: Any, model: Any) -> list[tuple]:
    """(output name or None, labels, loss name, units, loc) for each output whose labels
    are arrays in memory."""
    if split.dataset is not None or split.y is None:
        return []
    names = (config.model.output_names() if getattr(config.model, "kind", "") == "graph"
             else list(getattr(model, "output_names", None) or []))
    losses = config.compile.loss
    if len(model.outputs) == 1 and not isinstance(split.y, dict):
        only = names[0] if names else None
        loss = next(iter(losses.values())) if isinstance(losses, dict) else losses
        return [(None, _labels(split.y), _loss_name(loss), list(model.outputs[0].shape[1:]),
                 _output_layer_loc(config, only))]
    if not isinstance(split.y, dict) or not isinstance(losses, dict):
        return []
    found = []
    for name, tensor in zip(names, model.outputs, strict=False):
        if name in split.y and name in losses:
            found.append((name, _labels(split.y[name]), _loss_name(losses[name]),
                          list(tensor.shape[1:]), _output_layer_loc(config, name)))
    return found


def _watched_without_validation(config: Any, splits: Splits) -> list[Problem]:
    """A loader that returned no validation split, under callbacks that watch val_ values
    (the config could not know: only the loader does)."""
    if splits.validation is not None:
        return []
    problems = []
    for index, spec in enumerate(config.callbacks):
        for loc, name in spec.monitored():
            if name.startswith("val_"):
                problems.append(Problem(loc=("callbacks", index, *loc), message=(
                    f"{spec.type} watches {name!r}, but the data has no validation split (the "
                    "loader returned no 'validation'); return one, set data.validation_split, "
                    f"or watch {name.removeprefix('val_')!r}")))
    return problems


def file_problems(name: str, split: Split, config: Any, model: Any) -> list[str]:
    """A new file's samples and labels (`cbrun evaluate --data`, `cbrun predict`) checked
    against a trained model as training checks its splits; each message says what the
    model takes (the file is what is wrong, not the config)."""
    problems = _input_problems(name, split, model, stack=False, advice=False)
    if not problems:
        for output, y, loss, shape, loc in _labels_by_output(split, config, model):
            problems += _label_problems(name, y, loss, shape, loc, output, advice=False)
    return [p.message for p in problems]


def check_data_fits(config: Any, splits: Splits, model: Any) -> None:
    problems: list[Problem] = _watched_without_validation(config, splits)
    # A stack's problems point at its input_shape and last layer, a graph's at its output
    # layers; other model kinds at the model.
    stack = getattr(config.model, "kind", "stack") == "stack"
    for which, split in splits.named().items():
        which = "training" if which == "train" else which
        problems += _input_problems(which, split, model, stack)
        for output, y, loss, shape, loc in _labels_by_output(split, config, model):
            problems += _label_problems(which, y, loss, shape, loc, output)
    if problems:
        raise ConfigError(problems)
