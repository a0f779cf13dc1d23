"""From a YAML file to a validated RunConfig, or every problem at once with positions.

The order: read the text (refusing binary or huge files), compose it with positions
(yamlio), apply `--set` overrides, report the parameters of older Keras (legacy), validate
with pydantic, then check what needs the whole config (monitors, cross-field rules). Every
problem found along the way is reported together, sorted by line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cbrun.config.positions import LoadedYaml, Positions
from cbrun.config.pydantic_errors import validation_problems
from cbrun.config.root import RunConfig
from cbrun.config.yamlio import load_yaml_text, read_config_text
from cbrun.errors import ConfigError, Problem


@dataclass
class LoadedConfig:
    config: RunConfig
    path: Path
    text: str
    positions: Positions
    overrides: tuple[str, ...] = ()  # the `--set KEY=VALUE` texts, in the order applied
    files: tuple[Path, ...] = ()  # a composed config's files (config/compose.py), in order

    @property
    def config_dir(self) -> Path:
        return self.path.parent


# ---------------------------------------------------------------- the whole pipeline

def _sorted(problems: list[Problem], file: str) -> list[Problem]:
    unique: dict[tuple[Any, ...], Problem] = {}
    for p in problems:
        unique.setdefault((p.file, p.line, p.column, p.loc, p.message), p)
    return sorted(unique.values(),
                  key=lambda p: (p.file != file, p.file or "", p.line or 0, p.column or 0))


def data_file_problems(config: Any, folder: Path) -> list[tuple[tuple[Any, ...], str]]:
    """What the data source finds wrong with its files, relative to `folder` (the config
    file's): missing files, headers, shapes, listings. Found now, not after TensorFlow's
    import and a new run directory."""
    return config.data.preflight(folder, seed=config.seed)


def validate_data(loaded: LoadedYaml, data_dir: Path | None = None,
                  resolved: bool = False) -> RunConfig:
    """Validate a parsed file: every legacy, schema, cross-field and monitor problem, and
    with `data_dir` (where relative data paths start) whether the data files exist.
    `resolved`: a run's resolved.yaml, which an older cbrun may have written."""
    from cbrun.config.legacy import legacy_pass
    from cbrun.config.monitors import monitor_problems, partial_monitor_problems

    pos = loaded.positions
    # The legacy pass hands on a copy without the old names it reported: each is reported
    # once, with its replacement, and the schema never sees it.
    problems, data = legacy_pass(loaded.data, pos, loaded.text)
    if isinstance(data, dict) and "data" in data:
        from cbrun.config.data import default_source, resolved_by_older

        section = default_source(data["data"])
        data = {**data, "data": resolved_by_older(section) if resolved else section}
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        problems += validation_problems(exc, data, pos)
        # The monitors of the callbacks that are valid on their own: the schema cannot
        # see them (they need the whole config), so nothing here repeats it.
        problems += [pos.problem(loc, message)
                     for loc, message in partial_monitor_problems(data)]
        if data_dir is not None:
            problems += [pos.problem(loc, message)
                         for loc, message in _data_alone(data, data_dir)]
        raise ConfigError(_sorted(problems, pos.file)) from None
    found = monitor_problems(config)
    if config.tracking is not None:
        found += config.tracking.package_problems()
    for index, spec in enumerate(config.callbacks):
        for loc, message in spec.cross_check(config):
            found.append((("callbacks", index, *loc), message))
    problems += [pos.problem(loc, msg) for loc, msg in found]
    if data_dir is not None:
        # The data's files are read once the schema holds: a source's checks need its
        # validated fields (columns, array names, image size).
        from cbrun.config.data import shape_problems

        found = data_file_problems(config, data_dir) or shape_problems(config, data_dir)
        model_check = getattr(config.model, "preflight", None)
        found += model_check(data_dir) if model_check else []
        found += config.tracking.store_problems(data_dir) if config.tracking else []
        problems += [pos.problem(loc, message) for loc, message in found]
    if problems:
        raise ConfigError(_sorted(problems, pos.file))
    return config


def _data_alone(data: Any, data_dir: Path) -> list[tuple[tuple[Any, ...], str]]:
    """The data files' problems of a config whose other sections are wrong, when its
    `data:` section is right on its own: a missing file is not left for the next round."""
    from pydantic import TypeAdapter

    from cbrun.config.data import DataConfig

    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        return []
    try:
        section = TypeAdapter(DataConfig).validate_python(data["data"])
    except (ValidationError, ValueError):
        return []  # its own problems are reported already
    seed = data.get("seed", 42)
    return section.preflight(data_dir, seed=seed if isinstance(seed, int) else 42)


def load_config(path: str | Path | Sequence[str | Path], overrides: Sequence[str] = (), *,
                check_data_files: bool = False, resolved: bool = False) -> LoadedConfig:
    """Read, compose (`extends:`, or several files merged in order: config/compose.py),
    override (`--set KEY=VALUE`, applied in order), resolve `${...}` references and
    validate a config.

    `check_data_files` also checks the data source's files (that they exist, their headers
    and shapes), relative to the folder of the config file. It is off by default because a run directory's
    resolved.yaml is not in that folder (`cbrun resume` finds the data through run.json).

    Raises ConfigError with every problem found, each with its file, line and column (or
    the `--set` that caused it)."""
    from cbrun.config.compose import EXTENDS, compose_files, interpolate, with_unresolved
    from cbrun.config.overrides import apply_overrides

    paths = [Path(p) for p in ([path] if isinstance(path, str | Path) else path)]
    path = paths[-1]
    text = read_config_text(path)
    loaded = load_yaml_text(text, str(path))
    files: tuple[Path, ...] = ()
    if len(paths) > 1 or EXTENDS in loaded.data:
        loaded = compose_files(paths)
        files = tuple(_files(paths))
        # What the run keeps as its config.yaml: the files merged, before --set.
        import yaml

        text = ("# Composed by cbrun from " + ", ".join(map(str, files)) + "\n"
                + yaml.safe_dump(loaded.data, sort_keys=False, allow_unicode=True))
    if overrides:
        loaded = apply_overrides(loaded, overrides)
    loaded, unresolved = interpolate(loaded)
    try:
        config = validate_data(loaded, path.parent if check_data_files else None, resolved)
    except ConfigError as exc:
        raise ConfigError(with_unresolved(exc.problems, unresolved)) from None
    if unresolved:
        raise ConfigError(unresolved)
    return LoadedConfig(config=config, path=path, text=text, positions=loaded.positions,
                        overrides=tuple(overrides), files=files)


def _files(paths: list[Path]) -> list[Path]:
    """Every file a composed config read, each once, bases first."""
    from cbrun.config.compose import EXTENDS
    from cbrun.config.yamlio import load_yaml_text as parse

    found: list[Path] = []

    def visit(path: Path) -> None:
        data = parse(read_config_text(path), str(path)).data
        bases = data.get(EXTENDS) or []
        for base in [bases] if isinstance(bases, str) else bases:
            visit(path.parent / base)
        if path.resolve() not in found:
            found.append(path.resolve())

    for path in paths:
        visit(path)
    return found
