"""A config made of several files: `extends:` in a file, and several files on the command
line (`cbrun train base.yaml exp.yaml`), merged in order, and `${section.key}` references
to other values, resolved last (after `--set`, so that a reference sees the value a `--set`
gave).

Merging: mappings merge key by key, the later file winning; a list or a scalar replaces the
earlier one whole (a `callbacks:` list is the later file's, not a mix). `extends: base.yaml`
(or a list of files) reads those files first, relative to the file that names them, then
the file itself on top. Every value keeps the file and line it came from, so an error, and
`cbrun config show`, name them.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from cbrun.config.positions import LoadedYaml, Loc, Positions
from cbrun.config.yamlio import load_yaml_text, read_config_text
from cbrun.errors import ConfigError, Problem, format_loc
from cbrun.suggest import did_you_mean

EXTENDS = "extends"
MAX_DEPTH = 16  # files extending files; deeper is a loop or a mistake
_REFERENCE = re.compile(r"\$\{([^{}]*)\}")


def compose_files(paths: list[Path]) -> LoadedYaml:
    """The files merged in order, each after what it extends; positions name each value's
    file. The last file is the config's own (its folder is where data paths start)."""
    merged: dict[str, Any] = {}
    positions = Positions(file=str(paths[-1]))
    texts = []
    for path in paths:
        _layer(path, merged, positions, texts, chain=())
    return LoadedYaml(data=merged, positions=positions, text="".join(texts))


def _layer(path: Path, merged: dict, positions: Positions, texts: list[str],
           chain: tuple[Path, ...]) -> None:
    resolved = path.resolve()
    if resolved in chain:
        loop = " -> ".join(str(p) for p in (*chain, resolved))
        raise ConfigError([Problem(loc=(EXTENDS,), file=str(path),
                                   message=f"extends goes round in a circle: {loop}")])
    if len(chain) >= MAX_DEPTH:
        raise ConfigError([Problem(loc=(EXTENDS,), file=str(path),
                                   message=f"more than {MAX_DEPTH} files extend each other")])
    loaded = load_yaml_text(read_config_text(path), str(path))
    data = dict(loaded.data)
    for base in _bases(data.pop(EXTENDS, None), path, loaded.positions):
        _layer(base, merged, positions, texts, (*chain, resolved))
    texts.append(f"# {path}\n{loaded.text}")
    _merge(merged, data, (), loaded.positions, positions, str(path))


def _bases(value: Any, path: Path, pos: Positions) -> list[Path]:
    if value is None:
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError([pos.problem((EXTENDS,), "extends names the files this one builds "
                                                   "on: a path, or a list of paths")])
    found = []
    for i, name in enumerate(names):
        base = path.parent / name
        if not base.is_file():
            near = [p.name for p in path.parent.glob("*.y*ml")]
            loc = (EXTENDS,) if isinstance(value, str) else (EXTENDS, i)
            raise ConfigError([pos.problem(loc, f"no such file {name!r} (looked for {base})"
                                                f"{did_you_mean(name, near)}")])
        found.append(base)
    return found


def _merge(into: dict, layer: dict, loc: Loc, own: Positions, positions: Positions,
           file: str) -> None:
    for key, value in layer.items():
        here = (*loc, key)
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _take(positions, own, here, file, keys_only=True)
            _merge(into[key], value, here, own, positions, file)
            continue
        into[key] = copy.deepcopy(value)
        _drop(positions, here)
        _take(positions, own, here, file)


def _drop(positions: Positions, loc: Loc) -> None:
    """Forget where the values a later file replaced came from."""
    for table in (positions.values, positions.keys, positions.ends, positions.sources):
        for known in [k for k in table if k[:len(loc)] == loc]:
            del table[known]


def _take(positions: Positions, own: Positions, loc: Loc, file: str,
          keys_only: bool = False) -> None:
    """Positions of `loc` (and, unless `keys_only`, of all inside it) from one file. A
    mapping both files set (`keys_only`) takes the later file's key and value positions
    together with its name: a problem with the whole mapping is at a line of that file."""
    tables = ((own.values, positions.values), (own.keys, positions.keys),
              (own.ends, positions.ends))
    for source, target in tables:
        for known in [k for k in source if k[:len(loc)] == loc and
                      (not keys_only or k == loc)]:
            target[known] = source[known]
            positions.sources[known] = file


def interpolate(loaded: LoadedYaml) -> tuple[LoadedYaml, list[Problem]]:
    """`${data.batch_size}`: a value that is one reference takes the referenced value, type
    and all; a reference inside a longer string is written into it. A reference that cannot
    be followed stays as written, with a problem at its line: the caller reports it with the
    config's other problems, in one run."""
    data = copy.deepcopy(loaded.data)
    problems: list[Problem] = []

    def resolve(value: Any, loc: Loc, seen: tuple[Loc, ...]) -> Any:
        if isinstance(value, dict):
            return {k: resolve(v, (*loc, k), seen) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, (*loc, i), seen) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        whole = _REFERENCE.fullmatch(value)
        try:
            if whole:
                return _follow(whole.group(1), data, loc, seen, resolve)
            return _REFERENCE.sub(lambda m: _as_text(m.group(1), _follow(
                m.group(1), data, loc, seen, resolve)), value)
        except _Unresolved as exc:
            problems.append(loaded.positions.problem(loc, str(exc)))
            return value

    result = resolve(data, (), ())
    unique = {(p.file, p.line, p.message): p for p in problems}
    return (LoadedYaml(data=result, positions=loaded.positions, text=loaded.text),
            list(unique.values()))


def with_unresolved(problems: list[Problem], unresolved: list[Problem]) -> list[Problem]:
    """The references that could not be followed, then the other problems, less those of
    the values those references left as written (they would say the same twice)."""
    places = [p.loc for p in unresolved]
    return [*unresolved, *[p for p in problems
                           if not any(tuple(p.loc[:len(loc)]) == loc for loc in places)]]


class _Unresolved(Exception):
    pass


def _as_text(path: str, value: Any) -> str:
    """A referenced value written into a longer text: a number, a word, a truth value; a
    section or list has no one way to be written there (Python's repr is no answer)."""
    if isinstance(value, dict | list):
        raise _Unresolved(f"${{{path}}} is a {'section' if isinstance(value, dict) else 'list'}"
                          ", which cannot be written inside a text; name one of its values "
                          "(a value that is only ${...} takes a whole section)")
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _follow(path: str, data: Any, loc: Loc, seen: tuple[Loc, ...], resolve) -> Any:
    parts: list[Any] = [int(p) if p.lstrip("-").isdigit() else p
                        for p in path.strip().split(".")]
    if not path.strip() or any(p == "" for p in parts):
        raise _Unresolved(f"${{{path}}} names no value; write a dotted path such as "
                          "${data.batch_size}")
    target = tuple(parts)
    if target in seen or target == loc:
        raise _Unresolved(f"${{{path}}} refers to itself through "
                          f"{' -> '.join(format_loc(s) for s in (*seen, target))}")
    node: Any = data
    for i, part in enumerate(parts):
        where = format_loc(tuple(parts[:i])) if i else "the config"
        if isinstance(node, dict) and part in node or isinstance(node, list) and \
                isinstance(part, int) and -len(node) <= part < len(node):
            node = node[part]
        else:
            keys = [str(k) for k in node] if isinstance(node, dict) else []
            raise _Unresolved(f"${{{path}}}: {where} has no {part!r}"
                              f"{did_you_mean(str(part), keys)}")
    return resolve(node, target, (*seen, loc))
