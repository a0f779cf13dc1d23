"""`cbrun config show CONFIG...`: the config as cbrun reads it, files merged (`extends:`,
several files), `--set` applied and `${...}` resolved, each value with where it was set:
the file and line, or the `--set`. No TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cbrun.config.positions import Loc, Positions


@click.group("config")
def config() -> None:
    """Look at a config as cbrun reads it."""


@config.command("show")
@click.argument("configs", nargs=-1, required=True, metavar="CONFIG...",
                type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a value, as `cbrun train --set` does (repeatable).")
def show(configs: tuple[Path, ...], overrides: tuple[str, ...]) -> int:
    """Print CONFIG (several files merge in order) with where each value comes from. The
    config is validated first: a mistake is reported as `cbrun validate` reports it."""
    from cbrun.commands.init.document import Block, Items, render
    from cbrun.config.load import load_config

    loaded = load_config(list(configs), overrides)
    pos = loaded.positions
    data = _composed(loaded)

    def node(value: Any, loc: Loc) -> Any:
        if isinstance(value, dict) and value:
            block = Block()
            for key, item in value.items():
                shown = node(item, (*loc, key))
                block.set(key, shown, None if isinstance(shown, Block | Items)
                          else _where(pos, (*loc, key)))
            return block
        if isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
            items = Items()
            for i, item in enumerate(value):
                items.add(item, _where(pos, (*loc, i)))
            return items
        return value

    top = node(data, ())
    files = ", ".join(_shown(f) for f in loaded.files or [loaded.path])
    click.echo(render(top, [f"cbrun config show: {files}"
                            + (" with " + " ".join(f"--set {o}" for o in overrides)
                               if overrides else "")]), nl=False)
    return 0


def _composed(loaded) -> dict[str, Any]:
    """The values as read (files, --set, references), before the schema fills defaults."""
    from cbrun.config.compose import compose_files, interpolate
    from cbrun.config.overrides import apply_overrides
    from cbrun.config.yamlio import load_yaml_text, read_config_text

    files = list(loaded.files) or [loaded.path]
    composed = compose_files(files) if loaded.files else \
        load_yaml_text(read_config_text(loaded.path), str(loaded.path))
    if loaded.overrides:
        composed = apply_overrides(composed, loaded.overrides)
    loaded.positions.origins.update(composed.positions.origins)
    return interpolate(composed)[0].data


def _shown(path: Path) -> str:
    """A file as the user would name it: from the current folder when it is under it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _where(pos: Positions, loc: Loc) -> str:
    origin = pos.origin(loc)
    if origin is not None:
        return origin
    file, line, _ = pos.locate(loc)
    return f"{file}:{line}" if line else file
