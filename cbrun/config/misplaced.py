"""Keys copied from a `model.fit(...)` or `model.compile(...)` call into cbrun's section of
the same name, which cbrun reads from elsewhere.

`fit: {epochs: 10, batch_size: 32, validation_split: 0.2}` is what a working script passes
to `model.fit`; in a cbrun config the batches and the split belong to `data`. These get a
message naming the right place instead of "unknown key", and a moved key's value is carried
to that place in the cleaned data, so that the schema checks it (at the line where it was
written) and the rest of the config validates as if the user had moved it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from cbrun.config import keras_api
from cbrun.config.fixline import Edit, dump, get
from cbrun.config.positions import Loc
from cbrun.errors import format_loc

_ABSENT = object()  # nothing set at the place a key moves to


@dataclass(frozen=True)
class Moved:
    """A `model.fit` / `model.compile` argument that cbrun reads from another place."""

    to: Loc
    why: str


# Keys people copy from a working `model.fit(...)` / `model.compile(...)` call into cbrun's
# section of the same name. Moved keys keep their meaning, so the value is carried to its
# place and checked there; the others say what cbrun does instead.
MISPLACED: dict[Loc, Moved | str] = {
    ("fit", "validation_split"): Moved(("data", "validation_split"),
                                       "cbrun's data section splits and batches the arrays"),
    ("fit", "batch_size"): Moved(("data", "batch_size"),
                                 "cbrun's data section batches the arrays"),
    ("fit", "shuffle"): Moved(("data", "shuffle"),
                              "cbrun's data section orders the samples (by seed and epoch, "
                              "which keeps resume exact)"),
    ("fit", "callbacks"): Moved(("callbacks",), "callbacks are a section of their own"),
    ("fit", "validation_data"): (
        "cbrun reads validation arrays from a file, not from the config: set "
        "`data.validation_path` (a .npz with the same keys as `data.path`), or hold out part "
        "of the training data with `data.validation_split`"),
    ("fit", "verbose"): ("cbrun draws its own progress display (epochs, batches, events); "
                         "`--quiet` silences it. Remove it"),
    ("fit", "initial_epoch"): ("cbrun counts epochs itself: `cbrun resume runs/<id>` "
                               "continues a run after its last saved epoch. Remove it"),
    ("compile", "learning_rate"): Moved(("compile", "optimizer", "learning_rate"),
                                        "the learning rate is a parameter of the optimizer"),
    ("compile", "lr"): Moved(("compile", "optimizer", "learning_rate"),
                             "the learning rate is a parameter of the optimizer"),
}


@functools.cache
def section_keys() -> dict[tuple[str, ...], list[str]]:
    """The keys each section takes (the top level: ()), read from the section models, so
    that a key written in the wrong one can be sent home."""
    from cbrun.config.compile import CompileConfig
    from cbrun.config.data.common import DataSource
    from cbrun.config.fit import FitConfig
    from cbrun.config.model.stack import StackModel
    from cbrun.config.root import RunConfig

    def keys(model: Any) -> list[str]:
        return [info.alias or name for name, info in model.model_fields.items()
                if name != "type"]

    return {("data",): keys(DataSource), ("model",): keys(StackModel),
            ("compile",): keys(CompileConfig), ("fit",): keys(FitConfig), (): keys(RunConfig)}


def home_of(key: str, written_in: Loc) -> Loc | None:
    """Where `key`, written in `written_in` (a section or the top level), belongs; None
    when it is no section's key (or is that section's own)."""
    for section, keys in section_keys().items():
        if section != written_in and key in keys:
            return (*section, key)
    return None


class MisplacedKeys:
    """The misplaced-key checks of the legacy pass (cbrun.config.legacy._Pass), which
    provides `raw` (the data as parsed), `data` (the cleaned copy), `pos` and `report`."""

    raw: dict[Any, Any]
    data: dict[Any, Any]
    pos: Any
    report: Any

    def misplaced(self) -> None:
        moved: dict[Loc, Loc] = {}  # where a value was carried -> where it was written

        def taken(where: Loc, already: Any) -> str:
            if where in moved:  # not set there: another misplaced key was carried there
                return (f"; {format_loc(moved[where])} gives {format_loc(where)} too, so keep "
                        "one of them")
            shown = "" if isinstance(already, (list, dict)) else f" ({already!r})"
            return f"; {format_loc(where)} is already set{shown}, so remove this one"

        top_level = section_keys()[()]
        for key in [k for k in self.raw if isinstance(k, str) and k not in top_level]:
            to = home_of(key, ())
            if to is None or not isinstance(self.data, dict) or key not in self.data:
                continue  # an unknown key: the schema says so
            value = self.data.pop(key)
            hint, already = self.move((key,), to, value)
            message = f"{key!r} is not a top-level key: cbrun reads it from {format_loc(to)}"
            if already is not _ABSENT:
                message += taken(to, already)
                hint = None
            else:
                moved[to] = (key,)
            self.report((key,), message, Edit(drop=True), hint=hint)
        for loc, rule in MISPLACED.items():
            section = self.raw.get(loc[0])
            if not (isinstance(section, dict) and loc[1] in section):
                continue
            cleaned = get(self.data, loc[:1])
            value = cleaned.pop(loc[1])
            if isinstance(rule, str):
                self.report(loc, f"{loc[1]!r} is an argument of model.{loc[0]}(), not a key of "
                                 f"cbrun's {loc[0]} section: {rule}", Edit(drop=True))
                continue
            where = (format_loc(rule.to) if len(rule.to) > 1
                     else f"the top-level {rule.to[0]!r} section")
            if rule.to[:2] == ("compile", "optimizer"):
                hint, already = self.move_learning_rate(loc, value)
            else:
                hint, already = self.move(loc, rule.to, value)
            message = (f"{loc[1]!r} is an argument of model.{loc[0]}(), but cbrun reads it "
                       f"from {where}: {rule.why}")
            if already is not _ABSENT:
                message += taken(rule.to, already)
                hint = None
            else:
                moved[rule.to] = loc
            self.report(loc, message, Edit(drop=True), hint=hint)

    def move(self, old: Loc, new: Loc, value: Any) -> tuple[str | None, Any]:
        """Carry a value to its place in the cleaned data, with its positions, so that the
        schema checks it where the user wrote it. Returns (hint, the value already at the
        new place, or _ABSENT when there was none)."""
        parent = self.data if len(new) == 1 else self.data.setdefault(new[0], {})
        if new[0] == "callbacks":
            hint = "move `callbacks:` and its items out of fit, to the top level of the file"
        else:
            hint = f"move it under `{new[0]}:` as  {new[-1]}: {dump(value)}"
        if not isinstance(parent, dict):
            return hint, _ABSENT  # the schema reports the broken section itself
        if new[-1] in parent:
            return hint, parent[new[-1]]
        parent[new[-1]] = value
        self.pos.alias_tree(new, old)
        return hint, _ABSENT

    def move_learning_rate(self, old: Loc, value: Any) -> tuple[str | None, Any]:
        compile_ = self.data["compile"]
        optimizer = compile_.get("optimizer", "adam")
        if isinstance(optimizer, str):
            name = keras_api.optimizer_class(optimizer) or optimizer
            optimizer = compile_["optimizer"] = {"type": name}
            self.pos.alias(("compile", "optimizer", "type"), ("compile", "optimizer"))
        elif not isinstance(optimizer, dict):
            return None, _ABSENT  # the schema reports the optimizer itself
        name = optimizer.get("type", "Adam")
        hint = (f"write the optimizer as:  optimizer: {{type: {dump(name)}, learning_rate: "
                f"{dump(value)}}}")
        if "learning_rate" in optimizer or "lr" in optimizer:
            return hint, optimizer.get("learning_rate", optimizer.get("lr"))
        optimizer["learning_rate"] = value
        self.pos.alias(("compile", "optimizer", "learning_rate"), old)
        return hint, _ABSENT
