"""The YAML that `cbrun init` writes, with comments a reader can follow.

Column names, label values and folder names come from files anyone may have written, so
none of them is ever pasted into the text: every value is written by PyYAML's emitter
(which quotes and escapes what YAML would read as something else: `yes`, `1.5`, `!!tag`,
`a: b`, `# x`, a line break), every comment has its line breaks and control characters
escaped, and the whole text is read back with cbrun's own loader and compared with the
values before it is written. A name that holds YAML stays a name.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

import yaml

# Characters that end a YAML comment's line (PyYAML breaks lines at all of them).
_BREAKS = "\r\n\x85\u2028\u2029"
_WIDE = 10**9  # never fold a line: a folded value is harder to read and to edit


class _OneLineDumper(yaml.SafeDumper):
    """SafeDumper that writes a string holding line breaks double-quoted (`"a\\nb"`), on one
    line, instead of a single-quoted scalar that spans lines."""

    def choose_scalar_style(self):
        style = super().choose_scalar_style()
        if self.analysis is not None and self.analysis.multiline:
            return '"'
        return style


def flow(value: Any) -> str:
    """A value as YAML on one line: a scalar, [a, b] or {k: v}."""
    text = yaml.dump(value, Dumper=_OneLineDumper, default_flow_style=True, width=_WIDE,
                     allow_unicode=True, sort_keys=False)
    text = text.removesuffix("\n...\n").removesuffix("\n")
    if "\n" in text:  # not expected from the dumper above: never write what could mislead
        raise ValueError(f"cannot write {value!r} on one line")
    return text


def comment(text: str) -> str:
    """Text safe inside a `# comment`: line breaks, control, format and surrogate
    characters escaped as Python writes them."""
    def safe(char: str) -> str:
        if char in _BREAKS or unicodedata.category(char)[0] == "C":
            return ascii(char)[1:-1]
        return char

    return "".join(safe(c) for c in text)


@dataclass
class Note:
    text: str


@dataclass
class Entry:
    value: Any  # a scalar, list or dict (written on one line), or a Block / Items
    comment: str | None = None


@dataclass
class Block:
    """A block mapping: keys in order, each with an optional comment; comment lines."""

    items: list[tuple[str | None, Entry | Note]] = field(default_factory=list)

    def set(self, key: str, value: Any, comment: str | None = None) -> Block:
        self.items.append((key, Entry(value, comment)))
        return self

    def note(self, text: str) -> Block:
        self.items.append((None, Note(text)))
        return self

    def data(self) -> dict[str, Any]:
        return {key: _data(item.value) for key, item in self.items if isinstance(item, Entry)}


@dataclass
class Items:
    """A block sequence: `- value  # comment` lines, and comment lines."""

    items: list[Entry | Note] = field(default_factory=list)

    def add(self, value: Any, comment: str | None = None) -> Items:
        self.items.append(Entry(value, comment))
        return self

    def note(self, text: str) -> Items:
        self.items.append(Note(text))
        return self

    def data(self) -> list[Any]:
        return [_data(item.value) for item in self.items if isinstance(item, Entry)]


def _data(value: Any) -> Any:
    return value.data() if isinstance(value, Block | Items) else value


def _tail(text: str | None) -> str:
    return f"   # {comment(text)}" if text else ""


def _lines(node: Block | Items, indent: int) -> list[str]:
    pad = " " * indent
    out = []
    if isinstance(node, Block):
        for key, item in node.items:
            if isinstance(item, Note):
                out.append(f"{pad}# {comment(item.text)}")
            elif isinstance(item.value, Block | Items):
                out.append(f"{pad}{flow(key)}:{_tail(item.comment)}")
                out += _lines(item.value, indent + 2)
            else:
                out.append(f"{pad}{flow(key)}: {flow(item.value)}{_tail(item.comment)}")
        return out
    for item in node.items:
        if isinstance(item, Note):
            out.append(f"{pad}# {comment(item.text)}")
        elif isinstance(item.value, Block | Items):
            raise TypeError("a sequence item is written on one line")
        else:
            out.append(f"{pad}- {flow(item.value)}{_tail(item.comment)}")
    return out


def render(doc: Block, header: list[str]) -> str:
    """The document's text, header comment lines first. Raises ValueError when the text
    would not read back as the document's values (a bug here, never the data's fault)."""
    from cbrun.config.yamlio import load_yaml_text

    text = "\n".join([*(f"# {comment(line)}" for line in header), *_lines(doc, 0)]) + "\n"
    if load_yaml_text(text, "<init>").data != doc.data():
        raise ValueError("the config init wrote does not read back as written")
    return text
