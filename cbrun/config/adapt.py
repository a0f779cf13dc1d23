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
