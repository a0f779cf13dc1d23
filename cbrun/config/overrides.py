"""`--set KEY=VALUE`: change values of a config from the command line.

    cbrun train configs/digits.yaml --set fit.epochs=3 --set callbacks.EarlyStopping.patience=2

KEY is a dotted path; a list item is chosen by index (`callbacks.1`, `callbacks[1]`) or, in a
list of `{type: ...}` mappings, by its type when only one item has it. VALUE is read as
YAML, exactly as if it stood in the file (`3` is a number, `[accuracy]` a list, an empty
value null), and the result is validated like the file; an error in a value that came from
a `--set` names that `--set` instead of a line.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

from cbrun.config.positions import LoadedYaml, Positions
from cbrun.config.yamlio import compose
from cbrun.errors import ConfigError, Problem, format_loc
from cbrun.suggest import did_you_mean

_PIECE = re.compile(r"([^\[\]]*)((?:\[-?\d+\])*)")
_INDEX = re.compile(r"-?\d+")


class _Refused(Exception):
    def __init__(self, message: str, loc: tuple[Any, ...] = ()):
        super().__init__(message)
        self.message = message
        self.loc = loc


def parse_key(key: str) -> list[str | int]:
    """'callbacks[0].patience' -> ['callbacks', 0, 'patience']; a digit word stays a str
    (it may be a list index or a mapping key; which one depends on where it lands)."""
    if not key.strip():
        raise _Refused("the key before '=' is empty")
    parts: list[str | int] = []
    for piece in key.split("."):
        match = _PIECE.fullmatch(piece.strip())
        if match is None or not (match.group(1) or match.group(2)):
            raise _Refused(f"{key!r} is not a dotted path such as fit.epochs or "
                           f"callbacks[0].patience")
        if match.group(1):
            parts.append(match.group(1))
        parts += [int(i) for i in _INDEX.findall(match.group(2))]
    return parts


def _list_index(items: list[Any], part: str | int, where: tuple[Any, ...],
                rest: list[str | int]) -> int:
    if isinstance(part, int) or _INDEX.fullmatch(part):
        index = int(part)
        if not -len(items) <= index < len(items):
            span = f"0 to {len(items) - 1}" if items else "none"
            raise _Refused(f"{format_loc(where)} has {len(items)} items (indexes {span}); "
                           f"there is no [{index}]", where)
        return index % len(items)
    typed = [(i, item.get("type")) for i, item in enumerate(items) if isinstance(item, dict)]
    hits = [i for i, kind in typed if kind == part]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        listed = ", ".join(f"{i} {kind}" for i, kind in typed) or "none"
        kinds = [str(kind) for _, kind in typed]
        raise _Refused(f"no item of {format_loc(where)} has type {part!r}"
                       f"{did_you_mean(part, kinds)}; its items are: {listed}", where)
    example = ".".join(map(str, [*where, hits[0], *rest]))
    raise _Refused(f"{len(hits)} items of {format_loc(where)} have type {part!r} (indexes "
                   f"{', '.join(map(str, hits))}); choose one by index, e.g. {example}", where)


def _dict_key(node: dict[Any, Any], part: str | int) -> Any:
    """The key as YAML would read it in the file (`0` is the int 0), unless the mapping
    already holds it as written."""
    if part in node:
        return part
    try:
        data, _ = compose(str(part), "--set")
    except ConfigError:
        return part
    return data if data is not None and not isinstance(data, (list, dict)) else part


def _assign(data: dict[Any, Any], parts: list[str | int], value: Any) -> tuple[Any, ...]:
    """Set the value; returns the loc of what the override wrote: the value's own, or that
    of the outermost mapping it had to create (all of which came from the `--set`)."""
    node: Any = data
    loc: tuple[Any, ...] = ()
    created: tuple[Any, ...] | None = None
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        if isinstance(node, list):
            key: Any = _list_index(node, part, loc, parts[position + 1:])
        elif isinstance(node, dict):
            if isinstance(part, int):
                raise _Refused(f"{format_loc(loc)} is a mapping, not a list; [{part}] does "
                               f"not apply", loc)
            key = _dict_key(node, part)
        else:
            kind = "null" if node is None else type(node).__name__
            raise _Refused(f"{format_loc(loc)} is {kind} {node!r}, not a mapping or list, so "
                           f"it holds no {part!r}", loc)
        if last:
            node[key] = value
            return created or loc + (key,)
        if isinstance(node, dict) and key not in node:
            node[key] = {}  # `--set data.validation_split=0.2` works without a data section
            created = created or loc + (key,)
        node = node[key]
        loc += (key,)
    raise AssertionError("unreachable: parts is never empty")


def _record(positions: Positions, loc: tuple[Any, ...], label: str) -> None:
    for known in [k for k in positions.origins if k[:len(loc)] == loc]:
        del positions.origins[known]
    positions.origins[loc] = label


def apply_overrides(loaded: LoadedYaml, overrides: Sequence[str]) -> LoadedYaml:
    """A copy of `loaded` with every override applied in order; all refusals at once."""
    data = copy.deepcopy(loaded.data)
    problems: list[Problem] = []
    for text in overrides:
        label = f"--set {text}"
        key, sep, raw = text.partition("=")
        try:
            if not sep:
                raise _Refused("--set needs KEY=VALUE, e.g. --set fit.epochs=3")
            parts = parse_key(key)
            try:
                value, _ = compose(raw, label)
            except ConfigError as exc:
                # The value is one short line: its line and column would only distract.
                problems += [Problem(loc=tuple(parts), message=p.message, file=label,
                                     hint=p.hint) for p in exc.problems]
                continue
            loc = _assign(data, parts, value)
        except _Refused as refused:
            problems.append(Problem(loc=refused.loc, message=refused.message, file=label))
            continue
        _record(loaded.positions, loc, label)
    if problems:
        raise ConfigError(problems)
    return LoadedYaml(data=data, positions=loaded.positions, text=loaded.text)
