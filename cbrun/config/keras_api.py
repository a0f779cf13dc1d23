"""What Keras accepts, recorded as data so the config can be checked without TensorFlow.

`cbrun validate` must not import TensorFlow (~4 s), yet it has to know that `Dens` is not a
layer, that `Dense` takes `units` and not `unit`, which optimizers, losses and metrics exist,
and which way a metric improves. This module reads `keras_api.json`, which
`python -m cbrun.config.keras_api` regenerates from the installed Keras; a test checks that the
file still matches the Keras the tests run with.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

API_FILE = "keras_api.json"


@lru_cache(maxsize=1)
def api() -> dict[str, Any]:
    return json.loads(resources.files("cbrun.config").joinpath(API_FILE).read_text())


def layer_params(name: str) -> list[str] | None:
    """The keyword arguments of a keras.layers class; None when Keras has no such layer."""
    return api()["layers"].get(name)


def application_params(name: str) -> list[str] | None:
    """The keyword arguments of a keras.applications model (a backbone); None when none."""
    return api()["applications"].get(name)


def optimizer_class(name: str) -> str | None:
    """Keras resolves optimizer names case-insensitively ('adam', 'Adam', 'ADAM')."""
    return api()["optimizers_by_lower"].get(name.lower())


def metric_direction(logged_name: str) -> str | None:
    """'up', 'down' or None when Keras cannot tell (then mode: auto fails in Keras)."""
    return api()["metric_directions"].get(logged_name)


def names_of(kind: str) -> list[str]:
    """The string identifiers `keras.<kind>.get` accepts, case-sensitively: kind is one of
    activations, initializers, regularizers, constraints."""
    return api()[kind]


# ---------------------------------------------------------------- generator (imports Keras)

_LAYER_BASE_EXTRA = ["input_shape", "input_dim"]  # popped by keras.layers.Layer.__init__


def _params_of(cls: type) -> tuple[list[str], bool]:
    import inspect

    names: list[str] = []
    var_kw = False
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            continue
        has_var_kw = False
        for p in list(sig.parameters.values())[1:]:
            if p.kind is p.VAR_KEYWORD:
                has_var_kw = True
            elif p.kind is not p.VAR_POSITIONAL and p.name not in names:
                names.append(p.name)
        # Keyword arguments flow up the MRO only while each __init__ forwards **kwargs.
        if not has_var_kw:
            break
        if klass.__name__ == "Layer" and klass.__module__.startswith("keras"):
            names.extend(n for n in _LAYER_BASE_EXTRA if n not in names)
            break
    else:
        var_kw = True
    return names, var_kw


def _usable(objects: dict[str, Any]) -> list[str]:
    """The names in a Keras lookup table, less its abstract base class: `get("Initializer")`
    succeeds, but the object fails as soon as a weight is created."""
    return sorted(name for name, obj in objects.items()
                  if getattr(obj, "__name__", None) not in ("Initializer", "Regularizer",
                                                             "Constraint"))


def generate() -> dict[str, Any]:
    import inspect

    import keras
    from keras.src.losses import ALL_OBJECTS_DICT as LOSSES
    from keras.src.metrics import ALL_OBJECTS_DICT as METRICS
    from keras.src.optimizers import ALL_OBJECTS_DICT as OPTIMIZERS

    layers: dict[str, list[str]] = {}
    for name in dir(keras.layers):
        obj = getattr(keras.layers, name)
        if isinstance(obj, type) and issubclass(obj, keras.layers.Layer) and name[0].isupper():
            if name in ("Layer", "InputLayer", "Input"):
                continue
            layers[name] = _params_of(obj)[0]

    # Backbones are functions, not classes: their signature is their parameter list.
    applications = {name: list(inspect.signature(getattr(keras.applications, name)).parameters)
                    for name in dir(keras.applications) if name[0].isupper()}

    optimizers = {}
    for cls in OPTIMIZERS.values():
        if cls.__name__ in ("Optimizer", "LossScaleOptimizer"):
            continue
        optimizers[cls.__name__] = _params_of(cls)[0]

    metric_classes: dict[str, dict[str, Any]] = {}
    directions: dict[str, str] = {}
    # Default names are uniquified per process (auc, auc_1, ...): start from a clean slate.
    keras.backend.clear_session()
    for key, cls in sorted(METRICS.items()):
        if not isinstance(cls, type) or cls.__name__ == "Metric":  # the abstract base
            continue
        try:
            obj = cls()
        except TypeError:
            obj = None  # needs arguments (e.g. num_classes); its default name is unknown
        entry: dict[str, Any] = {"class": cls.__name__}
        if obj is not None:
            entry["default_name"] = obj.name
            if getattr(obj, "_direction", None):
                entry["direction"] = obj._direction
                directions.setdefault(obj.name, obj._direction)
                directions.setdefault(key, obj._direction)
        metric_classes[key] = entry
    directions.update({"accuracy": "up", "acc": "up", "loss": "down"})

    # What `keras.<module>.get(name)` looks a string up in: a layer argument such as
    # `activation: Softmax` or `kernel_initializer: glorot` fails there, at model build time.
    from keras.src.activations import ALL_OBJECTS_DICT as ACTIVATIONS
    from keras.src.constraints import ALL_OBJECTS_DICT as CONSTRAINTS
    from keras.src.initializers import ALL_OBJECTS_DICT as INITIALIZERS
    from keras.src.regularizers import ALL_OBJECTS_DICT as REGULARIZERS

    return {
        "keras_version": keras.__version__,
        "layers": dict(sorted(layers.items())),
        "applications": dict(sorted(applications.items())),
        "optimizers": dict(sorted(optimizers.items())),
        "optimizers_by_lower": {k: v.__name__ for k, v in sorted(OPTIMIZERS.items())
                                if v.__name__ in optimizers},
        "losses": sorted(k for k in LOSSES if isinstance(k, str)),
        "metrics": metric_classes,
        "metric_strings": sorted({*METRICS, "accuracy", "acc"}),
        "metric_directions": dict(sorted(directions.items())),
        "activations": sorted(ACTIVATIONS),
        "initializers": _usable(INITIALIZERS),
        "regularizers": _usable(REGULARIZERS),
        "constraints": _usable(CONSTRAINTS),
    }


def main() -> None:
    import sys
    from pathlib import Path

    target = Path(__file__).with_name(API_FILE)
    text = json.dumps(generate(), indent=1, sort_keys=False) + "\n"
    if "--check" in sys.argv:
        sys.exit(0 if target.read_text() == text else 1)
    target.write_text(text)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
