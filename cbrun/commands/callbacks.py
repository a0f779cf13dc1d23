"""`cbrun callbacks [NAME]`: the callbacks a config can declare, and their parameters."""

from __future__ import annotations

from typing import Any

import click

from cbrun.commands.complete import complete_callback_names
from cbrun.errors import UsageError


def type_text(schema: dict[str, Any]) -> str:
    """A short type for a parameter's JSON Schema: 'int >= 0', "'auto' | 'min' | 'max'"."""
    if "anyOf" in schema or "oneOf" in schema:
        return " | ".join(type_text(s) for s in schema.get("anyOf", schema.get("oneOf", [])))
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return " | ".join(repr(v) for v in schema["enum"])
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    kind = schema.get("type")
    names = {"integer": "int", "number": "float", "string": "str", "boolean": "bool",
             "null": "null"}
    if kind == "array":
        return f"list[{type_text(schema.get('items', {}))}]"
    if kind == "object":
        return "mapping"
    text = names.get(kind, str(kind or "any"))
    bounds = [(">=", "minimum"), (">", "exclusiveMinimum"), (">", "gt"), ("<=", "maximum"),
              ("<", "exclusiveMaximum"), ("<", "lt")]
    limits = [f"{op} {schema[key]}" for op, key in bounds if key in schema]
    return f"{text} {', '.join(limits)}" if limits else text


def _default_text(info: Any) -> str:
    from pydantic_core import PydanticUndefined

    if info.is_required():
        return "required"
    value = info.default_factory() if info.default is PydanticUndefined else info.default
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def parameters(cls: type, tag: str = "type") -> list[tuple[str, str, str, str]]:
    """(name, type, default, meaning) of every parameter of a callback spec (or of one kind
    of a parameter's value), less the `tag` field that names it."""
    props = cls.model_json_schema().get("properties", {})
    rows = []
    for name, info in cls.model_fields.items():
        if name == tag:
            continue
        key = info.alias or name
        kind = type_text(props.get(key, {}))
        if isinstance(info.discriminator, str):
            kind = f"mapping; `{info.discriminator}` picks one of the kinds below"
        rows.append((key, kind, _default_text(info),
                     info.description or ""))
    return rows


def kinds(cls: type) -> list[tuple[str, str, list[tuple[str, type]]]]:
    """For each parameter whose value is one of several mappings told apart by a key
    (LearningRateScheduler's `schedule`, by `kind`): (parameter, key, [(tag, model)])."""
    import typing

    found = []
    for name, info in cls.model_fields.items():
        key = info.discriminator
        members = typing.get_args(info.annotation)
        if not isinstance(key, str) or not members:
            continue
        tagged = []
        for member in members:
            field = getattr(member, "model_fields", {}).get(key)
            values = typing.get_args(field.annotation) if field is not None else ()
            if len(values) == 1:
                tagged.append((str(values[0]), member))
        if tagged:
            found.append((info.alias or name, key, tagged))
    return found


def _rows(rows: list[tuple[str, str, str, str]], width: int, indent: str) -> list[str]:
    lines = []
    for key, kind, default, meaning in rows:
        shown = "required" if default == "required" else f"default {default}"
        lines.append(f"{indent}{key}  ({kind}; {shown})")
        if meaning:
            lines.append(_wrap(meaning, width, indent=indent + "    "))
    return lines


def old_names(name: str) -> dict[str, str]:
    """Parameters of older Keras that `cbrun validate` recognises for this callback, with
    the advice it gives (cbrun.config.legacy)."""
    from cbrun.config.legacy import CALLBACK_PARAMS, Renamed

    return {key: f"renamed {rule.new!r}" if isinstance(rule, Renamed) else rule.advice
            for key, rule in CALLBACK_PARAMS.get(name, {}).items()}


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def _list(specs: dict[str, type]) -> None:
    from rich.table import Table

    table = Table(title="Callbacks (cbrun callbacks NAME shows the parameters)",
                  title_justify="left")
    table.add_column("type", style="bold", no_wrap=True)
    table.add_column("what it does")
    for name, cls in specs.items():
        table.add_row(name, getattr(cls, "summary", "") or "")
    _console().print(table)


def _wrap(text: str, width: int, indent: str = "") -> str:
    """Reflow docstring paragraphs (hard-wrapped in the source) to the terminal width."""
    import textwrap

    paragraphs = [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]
    return "\n\n".join(textwrap.fill(p, width, initial_indent=indent,
                                     subsequent_indent=indent) for p in paragraphs)


def describe(name: str, cls: type, width: int = 80) -> str:
    """NAME's page: what it does, then each parameter's type, default and meaning."""
    import inspect

    lines = [name, "", _wrap(inspect.cleandoc(cls.__doc__ or getattr(cls, "summary", "")),
                             width), ""]
    rows = parameters(cls)
    lines.append("Parameters:" if rows else "No parameters.")
    lines += _rows(rows, width, "  ")
    # A parameter taking one of several mappings gets each one's fields, so that the page
    # is the whole reference (LearningRateScheduler's schedule kinds).
    for param, key, tagged in kinds(cls):
        lines += ["", f"Kinds of {param} ({param}: {{{key}: NAME, ...}}):"]
        for tag, model in tagged:
            doc = inspect.cleandoc(model.__doc__ or "")
            lines += ["", f"  {key}: {tag}"]
            if doc:
                lines += [_wrap(doc, width, indent="    "), ""]
            lines += _rows(parameters(model, tag=key), width, "    ")
    old = old_names(name)
    if old:
        lines += ["", "Parameters of older Keras, refused with this advice:"]
        for key, advice in old.items():
            lines.append(_wrap(f"{key}: {advice}", width, indent="  "))
    return "\n".join(lines)


@click.command()
@click.argument("name", required=False, shell_complete=complete_callback_names)
def callbacks(name: str | None) -> None:
    """List the callbacks a config can declare, or show NAME's parameters: their types,
    defaults and meaning."""
    from cbrun.callbacks.registry import SPECS
    from cbrun.suggest import did_you_mean

    if name is None:
        _list(SPECS)
        return
    by_lower = {key.lower(): key for key in SPECS}
    found = by_lower.get(name.lower())
    if found is None:
        raise UsageError(f"unknown callback {name!r}{did_you_mean(name, SPECS)}; "
                         f"`cbrun callbacks` lists them all")
    import shutil

    width = min(shutil.get_terminal_size((100, 24)).columns, 100)
    click.echo(describe(found, SPECS[found], width))
