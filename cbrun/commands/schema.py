"""`cbrun schema`: the JSON Schema of a config, for editors and YAML language servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cbrun.errors import UsageError

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def config_schema() -> dict[str, Any]:
    """RunConfig's JSON Schema, with the names Keras accepts offered for completion."""
    from cbrun.config import keras_api
    from cbrun.config.root import RunConfig

    schema = RunConfig.model_json_schema()
    defs = schema.get("$defs", {})
    api = keras_api.api()
    # Editors complete from `enum`; these names are case-sensitive in cbrun too. Optimizer
    # names are not (Keras takes 'adam' and 'ADAM'), so they get no enum to warn about.
    layer_types = sorted({*api["layers"], *api["applications"]})
    _enum(defs.get("LayerSpec"), "type", layer_types)
    _string_enum(defs.get("NodeSpec", {}).get("properties", {}).get("type"), layer_types)
    _enum(defs.get("ObjectSpec"), "type", sorted({*api["losses"], *api["metric_strings"]}))
    compile_ = defs.get("CompileConfig", {}).get("properties", {})
    for key, names in (("loss", api["losses"]), ("metrics", api["metric_strings"])):
        field = compile_.get(key, {})
        # One value, or a mapping by output name: `{type: Foo}` reads as either, so an
        # editor must accept a value that fits both.
        if "oneOf" in field:
            field["anyOf"] = field.pop("oneOf")
        _strings_everywhere(field, sorted(names))
    _standard_bounds(schema)
    _drop_refused(schema)
    _composable(schema)
    return {"$schema": SCHEMA_DIALECT, **schema, "title": "cbrun run config"}


def _composable(schema: dict[str, Any]) -> None:
    """A file that `extends:` others holds only what it changes: the keys a whole config
    needs are required only of a file that extends nothing."""
    schema["properties"]["extends"] = {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        "description": "Config files this one builds on, relative to it, merged in order "
                       "before its own values (docs/config.md)."}
    required = schema.pop("required", [])
    if required:
        schema["if"] = {"not": {"required": ["extends"]}}
        schema["then"] = {"required": required}


def _drop_refused(schema: dict[str, Any]) -> None:
    """Leave out the callback types cbrun refuses (BackupAndRestore, ProgbarLogger, ...), so
    that an editor flags them as the user types. Validation still knows them, to say what
    cbrun does instead."""
    from cbrun.callbacks.registry import SPECS
    from cbrun.callbacks.unsupported import UnsupportedSpec

    refused = {name for name, cls in SPECS.items() if issubclass(cls, UnsupportedSpec)}
    items = schema.get("properties", {}).get("callbacks", {}).get("items", {})
    mapping = items.get("discriminator", {}).get("mapping", {})
    gone = {mapping.pop(name) for name in refused if name in mapping}
    if "oneOf" in items:
        items["oneOf"] = [ref for ref in items["oneOf"] if ref.get("$ref") not in gone]
    for ref in gone:
        schema.get("$defs", {}).pop(ref.rsplit("/", 1)[-1], None)


_BOUNDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}


def _standard_bounds(node: Any) -> None:
    """Pydantic writes a bound it cannot place (on an annotated float, say) under its own
    name (`gt`); editors only understand JSON Schema's (`exclusiveMinimum`)."""
    if isinstance(node, dict):
        if node.get("type") in ("number", "integer"):
            for ours, standard in _BOUNDS.items():
                if ours in node and standard not in node:
                    node[standard] = node.pop(ours)
        for value in node.values():
            _standard_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _standard_bounds(value)


def _enum(model: dict[str, Any] | None, key: str, names: list[str]) -> None:
    if model and key in model.get("properties", {}):
        model["properties"][key]["enum"] = names


def _strings_everywhere(node: Any, names: list[str]) -> None:
    """Offer `names` for every plain string inside a field's schema (each output's too)."""
    if isinstance(node, dict):
        if node.get("type") == "string" and "enum" not in node:
            node["enum"] = names
        for value in node.values():
            _strings_everywhere(value, names)
    elif isinstance(node, list):
        for value in node:
            _strings_everywhere(value, names)


def _string_enum(field: dict[str, Any] | None, names: list[str]) -> None:
    field = field or {}
    for branch in field.get("oneOf", []) + field.get("anyOf", []):
        if branch.get("type") == "string":
            branch["enum"] = names


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the schema to this file instead of printing it.")
def schema(output: Path | None) -> None:
    """Print the JSON Schema of a cbrun config.

    Save it and point your editor's YAML language server at it with a first line such as

        # yaml-language-server: $schema=cbrun.schema.json

    to get completion, hover help and errors while you type.
    """
    text = json.dumps(config_schema(), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        if not output.parent.is_dir():
            raise UsageError(f"-o {output}: the folder {output.parent} does not exist")
        try:
            output.write_text(text)
        except OSError as exc:
            raise UsageError(f"-o {output}: cannot write it: {exc.strerror or exc}") from None
        click.echo(f"wrote {output}", err=True)
