"""`adapt: true` on a preprocessing layer: the layer learns from the training split before
the first epoch (a mean and variance, a vocabulary, bin edges). What it learns is part of
the model, so a resumed run, evaluate and predict see the same."""

from __future__ import annotations

ADAPTABLE = ("Normalization", "StringLookup", "IntegerLookup", "TextVectorization",
             "Discretization")


TARGETS = "targets"


def adapt_problem(layer_type: str, adapt: bool | str, kwargs: dict | None = None) -> str | None:
    """`adapt: targets` puts a model's output in the user's units: a Normalization with
    `invert: true` learns the training targets' mean and variance, so the network learns
    a target of mean 0 and variance 1 and the model outputs, logs and exports values in
    the units of the data."""
    if adapt == TARGETS:
        if layer_type != "Normalization" or (kwargs or {}).get("invert") is not True:
            return ("adapt: targets is for a Normalization layer with invert: true at a "
                    "model output (it maps the network's scaled output back to the "
                    f"targets' units); this layer is {layer_type}"
                    f"{'' if layer_type != 'Normalization' else ' without invert: true'}")
        return None
    if adapt and layer_type not in ADAPTABLE:
        return (f"adapt: true is for layers that learn from data ({', '.join(ADAPTABLE)}); "
                f"{layer_type} has nothing to adapt")
    return None


# The width of a lookup's one-hot/multi-hot/count output is the size of the vocabulary it
# learns, which exists only after adapt, but the layers after it are built before: Keras
# then fails with "Shapes used to initialize variables must be fully-defined".
_LOOKUPS = ("StringLookup", "IntegerLookup", "TextVectorization")
_WIDE_MODES = ("one_hot", "multi_hot", "count", "tf_idf")


def adapt_width_problem(layer_type: str, kwargs: dict, adapt: bool) -> tuple[str, str] | None:
    """(key, message) when an adapted lookup's output width would be unknown at build."""
    mode = kwargs.get("output_mode", "int")
    if adapt is not True or layer_type not in _LOOKUPS or mode not in _WIDE_MODES:
        return None
    if kwargs.get("pad_to_max_tokens") is True and kwargs.get("max_tokens"):
        return None
    return ("output_mode", (
        f"with output_mode: {mode} the output width is the vocabulary size, which {layer_type} "
        "learns only when adapted, after the model is built; fix it with max_tokens: N and "
        "pad_to_max_tokens: true, or use output_mode: int and an Embedding"))
