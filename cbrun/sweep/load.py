"""From a sweep file to a checked Sweep: the file, its base config, the metric, and every
trial config the space can make, validated before any trial starts.

A trial's config is the base config with the sweep's `set` and one value per space key
applied as `--set` overrides. The space is checked at its ends (both ends of a range, every
value of a choice), combined with each other where that stays small: a range that would
make an invalid config (`factor` up to 1.5) is reported at its line in the sweep file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cbrun.config.load import validate_data
from cbrun.config.monitors import logged_keys, monitor_direction, primary_monitor
from cbrun.config.overrides import apply_overrides
from cbrun.config.positions import Positions
from cbrun.config.pydantic_errors import validation_problems
from cbrun.config.root import RunConfig
from cbrun.config.yamlio import load_yaml_text, read_config_text
from cbrun.errors import ConfigError, Problem
from cbrun.suggest import did_you_mean
from cbrun.sweep.spec import SweepFile

# Checking every combination of range ends costs a validation each (a few ms); past this
# many, each key's ends are checked with the others at their first end.
MAX_COMBINATIONS = 64
# Keys a trial cannot vary: the run name is the sweep's, one per trial.
FROZEN_KEYS = {"name": "each trial's run name is made from the base config's name and the "
                       "trial number"}


@dataclass
class Sweep:
    spec: SweepFile
    path: Path
    text: str
    positions: Positions
    base_path: Path
    base_text: str
    base: RunConfig
    metric: str
    direction: str  # minimize | maximize

    @property
    def base_sha256(self) -> str:
        return hashlib.sha256(self.base_text.encode()).hexdigest()

    def trial_overrides(self, params: dict[str, Any], number: int) -> list[str]:
        """The `--set` texts that make trial `number`'s config from the base config."""
        return [*self.spec.set, *(override(k, v) for k, v in params.items()),
                f"name={self.base.name[:58]}-t{number:03d}"]


def override(key: str, value: Any) -> str:
    # JSON is YAML: `1e-05`, `"relu"`, `true`, `null` read back as the value they are.
    return f"{key}={json.dumps(value)}"


def load_sweep(path: Path, base_path: Path | None = None) -> Sweep:
    """base_path: where the base config is when not beside the sweep file (a sweep's own
    copy of its file, in the sweep directory, names the base as the original did)."""
    text = read_config_text(path)
    loaded = load_yaml_text(text, str(path))
    pos = loaded.positions
    try:
        spec = SweepFile.model_validate(loaded.data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, loaded.data, pos, SweepFile)) from None
    for key in spec.space:
        first = key.split(".")[0].split("[")[0].strip()
        if first in FROZEN_KEYS:
            raise ConfigError([pos.problem(("space", key), f"{key!r} cannot be searched: "
                                           f"{FROZEN_KEYS[first]}", at_key=True)])

    base_path = base_path or (path.parent / spec.base)
    if not base_path.is_file():
        raise ConfigError([pos.problem(("base",), f"base {spec.base!r} is not a file; it is "
                                       f"relative to the sweep file, so cbrun looked for "
                                       f"{base_path.absolute()}")])
    base_text = read_config_text(base_path)
    base, base_text = _validated(base_text, base_path, spec.set, pos)
    problems: list[Problem] = []
    try:
        metric, direction = _objective(spec, base, pos)
    except ConfigError as exc:
        problems += exc.problems
        metric, direction = "", "minimize"
    sweep = Sweep(spec=spec, path=path, text=text, positions=pos, base_path=base_path,
                  base_text=base_text, base=base, metric=metric, direction=direction)
    try:
        check_space(sweep)
    except ConfigError as exc:
        problems += exc.problems
    if problems:  # all at once, in the order of the file
        raise ConfigError(sorted(problems, key=lambda p: (p.line or 0, p.column or 0)))
    return sweep


def _validated(base_text: str, base_path: Path, sets: list[str],
               pos: Positions) -> tuple[RunConfig, str]:
    """The base config with the sweep's fixed `set`, validated, and the text the sweep is
    bound to; its problems are the base file's own (at its lines, in the file that set the
    value when it `extends:` others) or those of a `set` entry (at the sweep file's
    line)."""
    import yaml

    from cbrun.config.compose import EXTENDS, compose_files, interpolate, with_unresolved

    loaded = load_yaml_text(base_text, str(base_path))
    try:
        if isinstance(loaded.data, dict) and EXTENDS in loaded.data:
            loaded = compose_files([base_path])
            # Bound to what the files say together: an edit to a file it extends is a
            # change of the base too.
            base_text = yaml.safe_dump(loaded.data, sort_keys=False, allow_unicode=True)
        loaded, unresolved = interpolate(apply_overrides(loaded, sets))
        try:
            config = validate_data(loaded, base_path.parent)
        except ConfigError as exc:
            raise ConfigError(with_unresolved(exc.problems, unresolved)) from None
        if unresolved:
            raise ConfigError(unresolved)
        return config, base_text
    except ConfigError as exc:
        labels = {f"--set {text}": ("set", i) for i, text in enumerate(sets)}
        raise ConfigError([pos.problem(labels[p.file], f"{p.field_path}: {p.message}",
                                       hint=p.hint) if p.file in labels else p
                           for p in exc.problems]) from None


def _objective(spec: SweepFile, base: RunConfig, pos: Positions) -> tuple[str, str]:
    if spec.metric is None:
        name, mode = primary_monitor(base)
        default = "maximize" if mode == "max" else "minimize"
        return name, spec.direction or default
    keys = logged_keys(base)
    if spec.metric not in keys:
        raise ConfigError([pos.problem(
            ("metric",), f"the base config's runs do not log {spec.metric!r}"
                         f"{did_you_mean(spec.metric, keys)}; they log: {', '.join(keys)}",
            given=spec.metric)])
    if spec.direction is not None:
        return spec.metric, spec.direction
    way = monitor_direction(base.compile, spec.metric)
    if way is None:
        raise ConfigError([pos.problem(
            ("metric",), f"cbrun cannot tell whether {spec.metric!r} should go up or down; "
                         f"add `direction: minimize` or `direction: maximize`")])
    return spec.metric, "maximize" if way == "up" else "minimize"


def _combinations(ends: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(ends)
    if len(list(itertools.islice(itertools.product(*ends.values()), MAX_COMBINATIONS + 1))
           ) <= MAX_COMBINATIONS:
        return [dict(zip(keys, values)) for values in itertools.product(*ends.values())]
    baseline = {k: v[0] for k, v in ends.items()}
    found = [baseline]
    for key, values in ends.items():
        found += [{**baseline, key: value} for value in values[1:]]
    return found


def check_space(sweep: Sweep) -> None:
    """Validate the trial configs at the space's ends; every problem at the sweep file's
    line of the key that caused it."""
    pos = sweep.positions
    problems: dict[tuple[Any, ...], Problem] = {}
    ends = {}
    for key, spec in sweep.spec.space.items():
        loaded = load_yaml_text(sweep.base_text, str(sweep.base_path))
        try:  # the key alone first: one that names nothing is one problem, not one a value
            apply_overrides(loaded, [*sweep.spec.set, override(key, spec.ends()[0])])
        except ConfigError as exc:
            for p in exc.problems:
                problems[(key, p.message)] = pos.problem(("space", key), p.message,
                                                         at_key=True)
            continue
        ends[key] = spec.ends()
    baseline = {k: v[0] for k, v in ends.items()}
    for combo in _combinations(ends):
        texts = {f"--set {override(k, v)}": k for k, v in combo.items()}
        loaded = load_yaml_text(sweep.base_text, str(sweep.base_path))
        try:
            validate_data(apply_overrides(loaded, [*sweep.spec.set, *[t[6:] for t in texts]]))
        except ConfigError as exc:
            for p in exc.problems:
                key = texts.get(p.file or "")
                if key is not None:
                    field = "" if p.field_path == key else f", {p.field_path}"
                    message = f"with {key} = {combo[key]!r}{field}: {p.message}"
                    culprits = [key]
                else:  # the base file's own check, failing only for this combination
                    changed = {k: v for k, v in combo.items() if v != baseline[k]} or combo
                    shown = ", ".join(f"{k} = {v!r}" for k, v in changed.items())
                    message = f"with {shown}: {p.position()}: {p.field_path}: {p.message}"
                    culprits = list(changed)
                for culprit in culprits:
                    problem = pos.problem(("space", culprit), message, hint=p.hint)
                    problems.setdefault((culprit, p.field_path, p.message.split(";")[0]),
                                        problem)
    if problems:
        ordered = sorted(problems.values(), key=lambda p: (p.line or 0, p.column or 0))
        raise ConfigError(ordered)
