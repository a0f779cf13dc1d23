"""What every config `cbrun init` writes shares: the output layer and compile settings of a
classifier or a regression, and the callbacks."""

from __future__ import annotations

import re

from cbrun.commands.init.document import Block, Items

LEARNING_RATE = 0.001


def classifier(units: int) -> tuple[dict, Block]:
    """(the output layer, compile) of a classifier of `units` classes."""
    return ({"type": "Dense", "units": units, "activation": "softmax"},
            Block().set("optimizer", {"type": "Adam", "learning_rate": LEARNING_RATE})
            .set("loss", "sparse_categorical_crossentropy").set("metrics", ["accuracy"]))


def regression(units: int) -> tuple[dict, Block]:
    """(the output layer, compile) of a regression of `units` numbers."""
    return ({"type": "Dense", "units": units},
            Block().set("optimizer", {"type": "Adam", "learning_rate": LEARNING_RATE})
            .set("loss", "mse").set("metrics", ["mae"]))


# Added after a regression's output layer: the network learns targets of mean 0 and
# variance 1 (a start near the mean, steps of a sensible size), and this layer maps its
# output back to the data's units, for the logs, evaluate, predict and every export.
TARGET_SCALE = {"type": "Normalization", "invert": True, "adapt": "targets"}
TARGET_SCALE_NOTE = ("Learns the training targets' mean and variance: the network learns "
                     "scaled targets, and the model outputs the data's units.")


def fit() -> Block:
    return Block().set("epochs", 50, "EarlyStopping below usually ends it sooner")


def callbacks() -> Items:
    return (Items()
            .note("Stop when val_loss has not improved for 5 epochs, and keep the best "
                  "weights.")
            .add({"type": "EarlyStopping", "monitor": "val_loss", "patience": 5,
                  "restore_best_weights": True})
            .add({"type": "ModelCheckpoint", "filepath": "checkpoints/best.keras",
                  "monitor": "val_loss", "save_best_only": True},
                 "the best epoch's model, one file")
            .add({"type": "CSVLogger", "filename": "log.csv"})
            .add({"type": "ReduceLROnPlateau", "monitor": "val_loss", "factor": 0.5,
                  "patience": 2}))


def shown(values: list, most: int = 6) -> str:
    """A few values for a comment: `a, b, c, ...`."""
    text = ", ".join(map(str, values[:most]))
    return text + (", ..." if len(values) > most else "")


def split_note(split: str, per_class: bool = False) -> str:
    what = "of each class's files" if per_class else "of the rows"
    return {"stratified": f"20% {what}, every class in its share, drawn from the seed",
            "random": f"20% {what}, drawn from the seed"}[split]


def identifier(text: str, taken: set[str]) -> str:
    """A name for a graph input or layer (a letter, then letters, digits, _), made from
    `text` and unique among `taken` (which it joins)."""
    import yaml

    base = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "column"
    # `yes`, `null`... are not strings to YAML; a name must start with a letter.
    if not (base[0].isalpha() and base[0].isascii()) or yaml.safe_load(base) != base:
        base = f"c_{base}"
    name, n = base[:60], 2
    while name in taken:
        name, n = f"{base[:57]}_{n}", n + 1
    taken.add(name)
    return name


def run_name(stem: str) -> str:
    """The run's name from the config file's: cbrun's name rules (a letter or digit, then
    letters, digits, _ . -), at most 64 characters."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", stem).strip("-._")[:64]
    return name or "run"
