"""YAML loading that remembers where every value came from.

PyYAML's safe loader gives values without positions and silently keeps the last of two
equal keys. cbrun composes the node tree itself so that every error can name the
`file:line:column` of the offending node, and so that everything wrong with the text of a
file (repeated keys, Python tags, unreadable scalars) is reported at once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cbrun.config.positions import LoadedYaml, Loc, Positions
from cbrun.errors import ConfigError, Problem

MAX_CONFIG_BYTES = 1_000_000  # a config is a page of text; anything larger is a mistake
MAX_DEPTH = 64  # a config nests about five levels; deeper is generated text or a mistake
MAX_NODES = 100_000  # counted after aliases expand, so `&a [*b, *b]` chains cannot explode

_CORE = "tag:yaml.org,2002:"
# The tags SafeLoader can build; anything else is either Python (refused) or unknown.
_SAFE_TAGS = frozenset(tag for tag in yaml.SafeLoader.yaml_constructors if tag is not None)
_MERGE_TAG = _CORE + "merge"


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _end(node: yaml.Node) -> tuple[int, int]:
    return node.end_mark.line + 1, node.end_mark.column + 1


class _Walker:
    """Records positions and finds every problem of the node tree in one pass."""

    def __init__(self, loader: yaml.SafeLoader, pos: Positions):
        self.loader = loader
        self.pos = pos
        self.problems: list[Problem] = []
        self.count = 0
        self.stack: set[int] = set()

    def add(self, node: yaml.Node, loc: Loc, message: str, hint: str | None = None,
            at: tuple[int, int] | None = None) -> None:
        line, col = at or _mark(node)
        self.problems.append(Problem(loc=loc, message=message, file=self.pos.file, line=line,
                                     column=col, hint=hint))

    def tag_ok(self, node: yaml.Node, loc: Loc) -> bool:
        tag = node.tag or ""
        if tag in _SAFE_TAGS or tag == _MERGE_TAG:
            return True
        if tag.startswith(_CORE + "python/"):
            self.add(node, loc, f"the tag !!{tag[len(_CORE):]} builds a Python object, which a "
                                "config may not do: loading a config must never run code",
                     hint="write the value as plain YAML (a mapping, list, string or number)")
        else:
            shown = "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag
            self.add(node, loc, f"unknown YAML tag {shown}; a config holds plain mappings, "
                                "lists, strings and numbers",
                     hint="remove the tag")
        return False

    def scalar(self, node: yaml.ScalarNode, loc: Loc, report: bool = True) -> tuple[bool, Any]:
        """Build one scalar now, so that an unreadable `!!int abc` is reported here."""
        try:
            return True, self.loader.construct_object(node)
        # PyYAML's scalar constructors fail on bad input with whatever the parse raised
        # (`!!timestamp foo` gives AttributeError, an empty `!!int` IndexError); each is
        # this node's fault, so it becomes a problem at this node.
        except (ValueError, TypeError, AttributeError, LookupError, ArithmeticError,
                yaml.YAMLError) as exc:
            if report:
                tag = (node.tag or "").removeprefix(_CORE)
                reason = getattr(exc, "problem", None) or str(exc)
                self.add(node, loc, f"{_short(node.value)!r} cannot be read as {tag} "
                                    f"({_short(reason, 120)})")
            return False, None

    def child(self, parent: yaml.Node, index: Any, node: yaml.Node, loc: Loc, depth: int
              ) -> None:
        key = id(index) if isinstance(index, yaml.Node) else index
        self.walk(node, loc, depth, self.loader.alias_marks.get((id(parent), key)))

    def walk(self, node: yaml.Node, loc: Loc, depth: int = 0,
             alias_at: tuple[int, int] | None = None) -> None:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooBig(node)
        self.pos.values[loc] = alias_at or _mark(node)
        self.pos.ends[loc] = _end(node)
        if not self.tag_ok(node, loc):
            return
        if isinstance(node, yaml.ScalarNode):
            self.scalar(node, loc)
            return
        if depth >= MAX_DEPTH:
            self.add(node, loc, f"values nest deeper than {MAX_DEPTH} levels; a config is a "
                                "few levels of mappings and lists")
            return
        if id(node) in self.stack:
            self.add(node, loc, "this alias refers to the mapping or list that contains it; "
                                "a config cannot hold itself", at=alias_at)
            return
        self.stack.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                self.mapping(node, loc, depth)
            else:
                for index, item in enumerate(node.value):
                    self.child(node, index, item, loc + (index,), depth + 1)
        finally:
            self.stack.discard(id(node))

    def mapping(self, node: yaml.MappingNode, loc: Loc, depth: int) -> None:
        seen: dict[Any, yaml.Node] = {}
        merged: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.append(value_node)
                self.walk(value_node, loc + ("<<",), depth + 1)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.add(key_node, loc, "a key must be a plain word, not a list or mapping")
                continue
            if not self.tag_ok(key_node, loc):
                continue
            ok, key = self.scalar(key_node, loc)
            if not ok:
                continue
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key (a `!!binary`?) is caught by construction
                continue
            if first is not None:
                hint = "remove one of them"
                if isinstance(key, bool) and key_node.value.lower() not in ("true", "false"):
                    hint = (f"YAML reads {key_node.value!r} as {key}; quote the key "
                            f"('{key_node.value}') if you meant the word")
                self.add(key_node, loc + (key,),
                         f"key {key!r} appears twice in this mapping (first on line "
                         f"{_mark(first)[0]}); YAML would silently keep only the last one",
                         hint=hint)
                continue
            seen[key] = key_node
            self.pos.keys[loc + (key,)] = _mark(key_node)
            self.child(node, key_node, value_node, loc + (key,), depth + 1)
        # `<<: *defaults` keys the mapping does not set itself live where the anchor is.
        for source in merged:
            sources = source.value if isinstance(source, yaml.SequenceNode) else [source]
            for item in sources:
                if not isinstance(item, yaml.MappingNode):
                    continue
                for key_node, value_node in item.value:
                    if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                        continue
                    ok, key = self.scalar(key_node, loc, report=False)
                    try:
                        fresh = ok and key not in seen
                    except TypeError:
                        fresh = False
                    if fresh:
                        seen[key] = key_node
                        self.pos.keys[loc + (key,)] = _mark(key_node)
                        self.pos.values[loc + (key,)] = _mark(value_node)


def _short(text: str, limit: int = 40) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


class _Loader(yaml.SafeLoader):
    """SafeLoader that remembers where each alias (`*name`) was written: the composer
    replaces an alias by the anchored node, whose position is the anchor's, not the use's."""

    def __init__(self, text: str):
        super().__init__(text)
        self.alias_marks: dict[tuple[int, Any], tuple[int, int]] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        mark = None
        if self.check_event(yaml.AliasEvent):
            start = self.peek_event().start_mark
            mark = (start.line + 1, start.column + 1)
        node = super().compose_node(parent, index)
        if mark is not None:
            key = id(index) if isinstance(index, yaml.Node) else index
            self.alias_marks[(id(parent), key)] = mark
        return node


# YAML 1.1, which PyYAML follows, reads `1e-3` (an exponent without a dot) as the string
# "1e-3"; YAML 1.2 and every ML tutorial mean the number. Learning rates are written that way.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


class _TooBig(Exception):
    def __init__(self, node: yaml.Node):
        self.node = node


_SYNTAX_HINTS = (
    ("'\\t'", "YAML indents with spaces; replace the tab characters"),
    ("mapping values are not allowed",
     "a value holding ': ' must be quoted, or a line is indented wrongly"),
    ("could not find expected ':'",
     "each line of a mapping is `key: value`; check the indentation and the quotes"),
    ("second YAML document",
     "remove the `---` line and what follows it, or merge the two documents into one mapping"),
)


def _yaml_error_problem(exc: yaml.YAMLError, file: str, text: str) -> Problem:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return Problem(loc=(), file=file, line=line, column=col,
                       message=f"the file holds the control character {chr(exc.character)!r}, "
                               "which YAML does not allow",
                       hint="remove it; a config is plain text")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    col = mark.column + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    message = f"YAML syntax: {problem}"
    if context and "single document" in context:
        message = ("the file holds a second YAML document (starting here); a config is one "
                   "document")
    elif context and context_mark is not None and context_mark is not mark:
        message += f" ({context} on line {context_mark.line + 1})"
    hint = next((h for needle, h in _SYNTAX_HINTS if needle in message), None)
    return Problem(loc=(), message=message, file=file, line=line, column=col, hint=hint)


def compose(text: str, file: str) -> tuple[Any, Positions]:
    """Parse YAML text into plain data and positions, or raise ConfigError with every
    problem of the text. Used for config files and for `--set` values alike."""
    pos = Positions(file=file)
    try:
        # The reader checks for control characters as soon as it is built.
        loader = _Loader(text)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_error_problem(exc, file, text)]) from None
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            # PyYAML's composer recurses once per level; thousands of `[` exhaust the stack.
            raise ConfigError([Problem(loc=(), file=file, line=1, column=1,
                                       message="values nest too deeply to read; a config is "
                                               "a few levels of mappings and lists")]) from None
        if node is None:
            return None, pos
        walker = _Walker(loader, pos)
        try:
            walker.walk(node, ())
        except _TooBig as big:
            line, col = _mark(big.node)
            raise ConfigError([Problem(loc=(), file=file, line=line, column=col,
                                       message=f"more than {MAX_NODES:,} values once aliases "
                                               "are expanded; a config has a few hundred")]
                              ) from None
        if walker.problems:
            # A node reached through an alias is walked once per use; report it once.
            unique = {(p.line, p.column, p.message): p for p in walker.problems}
            raise ConfigError(list(unique.values()))
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_error_problem(exc, file, text)]) from None
    finally:
        loader.dispose()
    return data, pos


def load_yaml_text(text: str, file: str) -> LoadedYaml:
    if not text.strip():
        raise ConfigError([Problem(loc=(), file=file, line=1, column=1,
                                   message="the file is empty; a config is a YAML mapping "
                                           "with at least name, model, compile and fit")])
    data, pos = compose(text, file)
    if data is None and not pos.values:
        raise ConfigError([Problem(loc=(), file=file, line=1, column=1,
                                   message="the file holds only comments; a config is a YAML "
                                           "mapping with at least name, model, compile and fit")])
    if not isinstance(data, dict):
        line, col = pos.values.get((), (1, 1))
        kind = {list: "a list", str: "a string", type(None): "null"}.get(type(data),
                                                                        type(data).__name__)
        raise ConfigError([Problem(loc=(), file=file, line=line, column=col,
                                   message=f"the top level must be a mapping of keys "
                                           f"(name, data, model, ...), not {kind}")])
    return LoadedYaml(data=data, positions=pos, text=text)


def read_config_text(path: Path) -> str:
    """Read a config file, refusing what cannot be a config (missing, huge, binary)."""
    shown = str(path)
    if not path.exists():
        raise ConfigError([Problem(loc=(), file=shown, message="no such file")])
    if path.is_dir():
        raise ConfigError([Problem(loc=(), file=shown,
                                   message="this is a directory; give a .yaml config file")])
    # The limit holds on the bytes read, not the size reported: a device (/dev/zero) or a
    # pipe reports 0 and may never end.
    with path.open("rb") as handle:
        raw = handle.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        size = path.stat().st_size
        what = f"the file is {size:,} bytes" if size > MAX_CONFIG_BYTES else (
            f"more than {MAX_CONFIG_BYTES:,} bytes were read and it had not ended")
        raise ConfigError([Problem(loc=(), file=shown,
                                   message=f"{what}; a config is at most "
                                           f"{MAX_CONFIG_BYTES:,} bytes of YAML")])
    nul = raw.find(b"\x00")
    if nul >= 0:
        line, col = _byte_position(raw, nul)
        raise ConfigError([Problem(loc=(), file=shown, line=line, column=col,
                                   message="the file is binary (it holds NUL bytes), "
                                           "not YAML text")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _byte_position(raw, exc.start)
        raise ConfigError([Problem(loc=(), file=shown, line=line, column=col,
                                   message=f"the file is not UTF-8 text ({exc.reason} at "
                                           f"byte {exc.start})",
                                   hint="save it as UTF-8")]) from None


def _byte_position(raw: bytes, offset: int) -> tuple[int, int]:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    return raw.count(b"\n", 0, offset) + 1, offset - line_start + 1
