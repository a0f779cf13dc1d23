"""Parameters and spellings from older Keras and tf.keras, and what to write instead.

Tutorials and old projects are full of names that Keras 3 renamed or dropped: `nb_epoch`,
ReduceLROnPlateau's `epsilon`, optimizer `lr`, `val_acc`, `.h5` checkpoints. Keras 3
rejects some with a bare "unrecognized argument", silently ignores others
(ReduceLROnPlateau takes **kwargs; optimizers drop `decay` with a warning), and some fail
only at the first save. This module runs over the parsed YAML before the schema does, so it
knows nothing of the schema classes, reports each old name at its own line, and names the
replacement; where the meaning is the same it also shows the corrected line.

The same pass catches keys copied from a `model.fit(...)` or `model.compile(...)` call into
the section of the same name (`fit: {batch_size: 32}`, `compile: {learning_rate: 0.01}`),
which cbrun keeps elsewhere (cbrun.config.misplaced).

It returns a cleaned copy of the data (renamed keys carried over, removed ones dropped, moved
ones moved) so that the schema then reports only the other mistakes, not "unknown key" once
more.

When one line holds several old names (`- {type: Dense, output_dim: 10, init: uniform}`),
every hint on it shows the same corrected line, with all of them fixed at once
(cbrun.config.fixline).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from cbrun.config import keras_api
from cbrun.config.fixline import Edit, LineFixer, get
from cbrun.config.misplaced import MisplacedKeys
from cbrun.config.positions import Loc, Positions
from cbrun.errors import Problem


@dataclass(frozen=True)
class Renamed:
    """Same meaning under a new name: the corrected line is the old one with the new key."""

    new: str
    when: str


@dataclass(frozen=True)
class Removed:
    """Gone, or changed meaning: `advice` says what to write instead."""

    advice: str
    when: str


Rule = Renamed | Removed

# Checked by `_Pass.checkpoint`, not `_Pass.apply`: only `period: 1` has an exact
# replacement, and only while save_freq is not set as well.
_PERIOD = Removed("`save_freq: epoch` saves at every epoch end (with save_best_only: true "
                  "only improvements are written); `save_freq: N` saves every N batches",
                  "Keras 3")

CALLBACK_PARAMS: dict[str, dict[str, Rule]] = {
    "ModelCheckpoint": {
        "period": _PERIOD,
        "save_format": Removed("the suffix of `filepath` chooses the format: `.keras` for the "
                               "whole model, `.weights.h5` with save_weights_only: true",
                               "Keras 3"),
        "options": Removed("Keras 3 takes no checkpoint options; remove it", "Keras 3"),
        "load_weights_on_restart": Removed("`cbrun resume runs/<id>` continues an "
                                           "interrupted run exactly", "TF 2.2"),
    },
    "ReduceLROnPlateau": {
        "epsilon": Renamed("min_delta", "Keras 2.1.6"),
    },
    "EarlyStopping": {},
    "TensorBoard": {
        "write_grads": Removed("TensorBoard no longer writes gradient histograms; "
                               "`histogram_freq` writes the weights' histograms", "TF 2.0"),
        "batch_size": Removed("TensorBoard no longer needs it; the batch size is "
                              "`data.batch_size`", "TF 2.0"),
        "embeddings_layer_names": Removed("`embeddings_freq` writes every Embedding layer; "
                                          "remove it", "TF 2.0"),
        "embeddings_data": Removed("the projector shows the Embedding layers' weights "
                                   "(`embeddings_freq`, `embeddings_metadata`); remove it",
                                   "TF 2.0"),
    },
}

FIT_PARAMS: dict[str, Rule] = {
    "nb_epoch": Renamed("epochs", "Keras 2.0"),
    "samples_per_epoch": Removed("`steps_per_epoch` counts batches, not samples "
                                 "(samples_per_epoch / data.batch_size)", "Keras 2.0"),
    "nb_val_samples": Removed("validation always covers all the validation data, which "
                              "data.validation_split or data.validation_path sets", "Keras 2.0"),
}

OPTIMIZER_PARAMS: dict[str, Rule] = {
    "lr": Renamed("learning_rate", "Keras 2.3 and TF 2.0"),
    "decay": Removed("Keras 3 ignores it (with a warning); lower the rate with a "
                     "ReduceLROnPlateau or LearningRateScheduler callback", "TF 2.11"),
}

# Keras 1 layer arguments. Applied only when the layer does not take the old name itself and
# does take the new one (Dropout's `p` -> `rate`, Dense's `output_dim` -> `units`, ...).
LAYER_PARAMS: dict[str, Rule] = {
    "output_dim": Renamed("units", "Keras 2.0"),
    "init": Renamed("kernel_initializer", "Keras 2.0"),
    "W_regularizer": Renamed("kernel_regularizer", "Keras 2.0"),
    "b_regularizer": Renamed("bias_regularizer", "Keras 2.0"),
    "W_constraint": Renamed("kernel_constraint", "Keras 2.0"),
    "b_constraint": Renamed("bias_constraint", "Keras 2.0"),
    "bias": Renamed("use_bias", "Keras 2.0"),
    "border_mode": Renamed("padding", "Keras 2.0"),
    "subsample": Renamed("strides", "Keras 2.0"),
    "nb_filter": Renamed("filters", "Keras 2.0"),
    "p": Renamed("rate", "Keras 2.0"),
    "dropout_W": Renamed("dropout", "Keras 2.0"),
    "dropout_U": Renamed("recurrent_dropout", "Keras 2.0"),
    "dim_ordering": Removed("write `data_format: channels_last` (was 'tf') or "
                            "`channels_first` (was 'th')", "Keras 2.0"),
    "nb_row": Removed("write `kernel_size: [rows, cols]`", "Keras 2.0"),
    "nb_col": Removed("write `kernel_size: [rows, cols]`", "Keras 2.0"),
}

LAYER_TYPES: dict[str, Rule] = {
    "Deconvolution2D": Renamed("Conv2DTranspose", "Keras 2.0"),
    "Deconvolution3D": Renamed("Conv3DTranspose", "Keras 2.0"),
    "AtrousConvolution2D": Removed("write `type: Conv2D` with `dilation_rate`", "Keras 2.0"),
    "Merge": Removed("cbrun builds a Sequential stack of layers, which needs no merge",
                     "Keras 2.0"),
    "MaxoutDense": Removed("Keras 2 dropped it; a Dense layer followed by a max over units "
                           "replaces it", "Keras 2.0"),
    "Highway": Removed("Keras 2 dropped it", "Keras 2.0"),
}

# Keras up to 2.2 logged `metrics: [accuracy]` as `acc`; since 2.3 a metric is logged under
# the name written in `metrics`.
METRIC_NAMES = {"acc": "accuracy", "val_acc": "val_accuracy"}

# Old names whose message depends on the rest of the mapping: checked by their own method.
_CHECKED_APART = {("ModelCheckpoint", "period")}

_OLD_MODEL_SUFFIX = re.compile(r"(?<!\.weights)\.(h5|hdf5)$")


class _Pass(MisplacedKeys):
    def __init__(self, data: dict[Any, Any], positions: Positions, text: str):
        self.raw = data
        self.data = _unshared(data)
        self.pos = positions
        self.problems: list[Problem] = []
        self.fixer = LineFixer(data, positions, text)
        # (index into problems, loc): problems whose hint is their line corrected, written
        # once every edit is known so that all hints of one line agree.
        self.want_line: list[tuple[int, Loc]] = []

    # ------------------------------------------------------------------ reporting

    def report(self, loc: Loc, message: str, edit: Edit | None = None,
               show_line: bool = False, at_key: bool = True, hint: str | None = None) -> None:
        if edit is not None:
            self.fixer.add(loc, edit)
        self.problems.append(self.pos.problem(loc, message, hint=hint, at_key=at_key))
        if show_line:
            self.want_line.append((len(self.problems) - 1, loc))

    def finish(self) -> None:
        for index, loc in self.want_line:
            self.problems[index].hint = self.fixer.hint(loc)

    def apply(self, mapping_loc: Loc, key: str, rule: Rule, what: str) -> None:
        loc = mapping_loc + (key,)
        target = get(self.data, mapping_loc)
        if isinstance(rule, Renamed):
            message = (f"{key!r} is the old name of {what}'s {rule.new!r} (renamed in "
                       f"{rule.when}); Keras 3 does not know {key!r}")
            value = target.pop(key)
            if rule.new in target:
                # Renaming would write the key twice; which value is meant is the user's
                # call. The cleaned data (and any corrected line) keeps the new name's.
                shown = "" if isinstance(target[rule.new], (list, dict)) \
                    else f" ({target[rule.new]!r})"
                self.report(loc, f"{message}, and {rule.new!r} is already set{shown}, so "
                                 f"remove one of them", Edit(drop=True))
                return
            self.report(loc, message, Edit(new_key=rule.new), show_line=True)
            target[rule.new] = value
            self.pos.alias(mapping_loc + (rule.new,), loc)
        else:
            self.report(loc, f"{key!r} is a parameter of older Keras ({what} lost it in "
                             f"{rule.when}): {rule.advice}", Edit(drop=True))
            target.pop(key)

    # ------------------------------------------------------------------ the sections

    def run(self) -> None:
        self.misplaced()
        fit = self.raw.get("fit")
        if isinstance(fit, dict):
            for key in [k for k in fit if k in FIT_PARAMS]:
                self.apply(("fit",), key, FIT_PARAMS[key], "fit")
        compile_ = self.raw.get("compile")
        if isinstance(compile_, dict) and isinstance(compile_.get("optimizer"), dict):
            for key in [k for k in compile_["optimizer"] if k in OPTIMIZER_PARAMS]:
                self.apply(("compile", "optimizer"), key, OPTIMIZER_PARAMS[key], "the optimizer")
        model = self.raw.get("model")
        if isinstance(model, dict) and isinstance(model.get("layers"), list):
            for index, layer in enumerate(model["layers"]):
                if isinstance(layer, dict):
                    self.layer(("model", "layers", index), layer)
        callbacks = self.raw.get("callbacks")
        if isinstance(callbacks, list):
            for index, spec in enumerate(callbacks):
                if isinstance(spec, dict) and isinstance(spec.get("type"), str):
                    self.callback(("callbacks", index), spec)
        self.finish()

    def layer(self, loc: Loc, layer: dict[Any, Any]) -> None:
        kind = layer.get("type")
        if isinstance(kind, str) and kind in LAYER_TYPES and keras_api.layer_params(kind) is None:
            rule = LAYER_TYPES[kind]
            if isinstance(rule, Renamed):
                self.report(loc + ("type",), f"layer type {kind!r} is the old name of "
                                             f"{rule.new!r} (renamed in {rule.when})",
                            Edit(new_value=rule.new), show_line=True, at_key=False)
                get(self.data, loc)["type"] = kind = rule.new
            else:
                self.report(loc + ("type",), f"layer type {kind!r} is from older Keras "
                                             f"(gone since {rule.when}): {rule.advice}",
                            at_key=False)
                return
        takes = keras_api.layer_params(kind) if isinstance(kind, str) else None
        if takes is None:
            return
        for key in [k for k in layer if k in LAYER_PARAMS and k not in takes]:
            rule = LAYER_PARAMS[key]
            if isinstance(rule, Renamed) and rule.new not in takes:
                continue  # not this layer's old name: the schema's did-you-mean handles it
            self.apply(loc, key, rule, kind)

    def callback(self, loc: Loc, spec: dict[Any, Any]) -> None:
        kind = spec["type"]
        rules = CALLBACK_PARAMS.get(kind, {})
        for key in [k for k in spec if k in rules and (kind, k) not in _CHECKED_APART]:
            self.apply(loc, key, rules[key], kind)
        if kind == "ModelCheckpoint":
            self.checkpoint(loc, spec)
        monitor = spec.get("monitor")
        new = self.metric_rename(monitor) if isinstance(monitor, str) else None
        if new:
            self.report(loc + ("monitor",), self.metric_message(monitor, new,
                                                                f"{kind} monitors"),
                        Edit(new_value=new), show_line=True, at_key=False)
            get(self.data, loc)["monitor"] = new

    def checkpoint(self, loc: Loc, spec: dict[Any, Any]) -> None:
        cleaned = get(self.data, loc)
        if "period" in spec:
            period = spec["period"]
            head = ("'period' is a parameter of older Keras (deprecated in TF 2.1, gone in "
                    f"{_PERIOD.when})")
            if "save_freq" in spec:
                self.report(loc + ("period",), f"{head}; save_freq replaces it and is already "
                                               f"set, so remove period", Edit(drop=True))
            elif type(period) is int and period == 1:
                self.report(loc + ("period",),
                            f"{head}: `save_freq: epoch` saves at every epoch end",
                            Edit(new_key="save_freq", new_value="epoch"), show_line=True)
                cleaned["save_freq"] = "epoch"
            else:
                self.report(loc + ("period",), f"{head}, and Keras 3 cannot save every "
                                               f"{period!r} epochs: {_PERIOD.advice}",
                            Edit(drop=True))
            cleaned.pop("period")
        path = spec.get("filepath")
        if not isinstance(path, str):
            return
        fixed = path
        for old, new in METRIC_NAMES.items():
            if self.metric_rename(old) and re.search(r"\{" + old + r"[:!}]", fixed):
                fixed = re.sub(r"\{" + old + r"([:!}])", "{" + new + r"\1", fixed)
                self.report(loc + ("filepath",),
                            self.metric_message(old, new, "ModelCheckpoint filepath uses"),
                            Edit(new_value=fixed), show_line=True, at_key=False)
        suffix = _OLD_MODEL_SUFFIX.search(fixed)
        if suffix:
            weights = spec.get("save_weights_only") is True
            new_suffix = ".weights.h5" if weights else ".keras"
            fixed = fixed[:suffix.start()] + new_suffix
            what = ("Keras 3 writes weights only as '.weights.h5'" if weights else
                    "Keras 3 saves whole models as '.keras'; '.h5' is the HDF5 format of "
                    "Keras 2, which cbrun cannot resume from")
            self.report(loc + ("filepath",), f"filepath ends in {suffix.group(0)!r}: {what}",
                        Edit(new_value=fixed), show_line=True, at_key=False)
        cleaned["filepath"] = fixed

    def metric_rename(self, name: str) -> str | None:
        """The new name of `acc`/`val_acc` when the run compiles `accuracy`, else None."""
        new = METRIC_NAMES.get(name)
        compile_ = self.raw.get("compile")
        names = compile_.get("metrics") if isinstance(compile_, dict) else None
        if new is None or not isinstance(names, list):
            return None
        return new if "accuracy" in names and "acc" not in names else None

    @staticmethod
    def metric_message(old: str, new: str, verb: str) -> str:
        return (f"{verb} {old!r}, the Keras 2.2 name of the accuracy: since Keras 2.3 "
                f"`metrics: [accuracy]` is logged as 'accuracy', so this run logs {new!r}")


def _unshared(value: Any) -> Any:
    """A deep copy in which every alias (`- *layer` after `- &layer {...}`) is a mapping of
    its own: each use is cleaned separately, and deepcopy would keep them one object."""
    if isinstance(value, dict):
        return {key: _unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshared(item) for item in value]
    return copy.copy(value)


def legacy_pass(data: dict[Any, Any], positions: Positions, text: str
                ) -> tuple[list[Problem], dict[Any, Any]]:
    """Every old Keras name in `data`, and a cleaned copy for the schema to check next."""
    found = _Pass(data, positions, text)
    found.run()
    return found.problems, found.data
