"""`adapt: true` on a preprocessing layer: the layer learns from the training split before
the first epoch (a mean and variance, a vocabulary, bin edges). What it learns is part of
the model, so a resumed run, evaluate and predict see the same."""

from __future__ import annotations

ADAPTABLE = ("Normalization", "StringLookup", "IntegerLookup", "TextVectorization",
             "Discretization")


def adapt_problem(layer_type: str, adapt: bool) -> str | None:
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
    if not adapt or layer_type not in _LOOKUPS or mode not in _WIDE_MODES:
        return None
    if kwargs.get("pad_to_max_tokens") is True and kwargs.get("max_tokens"):
        return None
    return ("output_mode", (
        f"with output_mode: {mode} the output width is the vocabulary size, which {layer_type} "
        "learns only when adapted, after the model is built; fix it with max_tokens: N and "
        "pad_to_max_tokens: true, or use output_mode: int and an Embedding"))
