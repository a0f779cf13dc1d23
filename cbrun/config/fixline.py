"""The corrected line shown under an old-name problem: the user's own line, fixed.

Several problems can sit on one line (`- {type: Dense, output_dim: 10, init: uniform}`).
Each records how its key's text changes (an Edit); the hint of every one of them is then the
line with all the edits on it applied, so that two hints never contradict each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from cbrun.config.positions import Loc, Positions

KEEP = object()  # an Edit that leaves the value as written


@dataclass
class Edit:
    """How one key's text changes in the corrected line: renamed, given a new value, or
    dropped (a removed or moved key has no place in the line)."""

    new_key: str | None = None
    new_value: Any = KEEP
    drop: bool = False


Span = tuple[int, int, str]  # 0-based start and end column in the line, replacement text


class LineFixer:
    def __init__(self, raw: Any, positions: Positions, text: str):
        self.raw = raw
        self.pos = positions
        self.lines = text.splitlines()
        self.edits: dict[Loc, Edit] = {}

    def add(self, loc: Loc, edit: Edit) -> None:
        known = self.edits.setdefault(loc, Edit())
        known.new_key = edit.new_key or known.new_key
        if edit.new_value is not KEEP:
            known.new_value = edit.new_value  # the last fix of a value includes the earlier
        known.drop = known.drop or edit.drop

    def hint(self, loc: Loc) -> str:
        """'write line N as:  <the user's line with every edit on it applied>', indentation
        dropped; 'write:  key: value' when the line cannot be rebuilt (a value spanning
        lines, a quoted key) or the value came from a `--set`."""
        edit = self.edits[loc]
        value = get(self.raw, loc) if edit.new_value is KEEP else edit.new_value
        fallback = f"write:  {edit.new_key or loc[-1]}: {dump(value)}"
        key_at = self.pos.keys.get(loc)
        if (key_at is None or not 0 < key_at[0] <= len(self.lines)
                or self.pos.origin(loc) is not None):
            return fallback
        number = key_at[0]
        text = self.lines[number - 1]
        spans: list[Span] = []
        for other, other_edit in self.edits.items():
            if (self.pos.keys.get(other, (None,))[0] != number
                    or self.pos.origin(other) is not None):
                continue
            found = self.spans(other, other_edit, text, number)
            if found is None:
                return fallback
            spans += found
        merged: list[Span] = []
        for span in sorted(set(spans)):  # a set: an alias repeats its anchor's edits
            if merged and span[0] < merged[-1][1]:
                if span[2] or merged[-1][2]:
                    return fallback  # two changes of one piece of text
                # Two dropped neighbours may both claim the comma between them.
                merged[-1] = (merged[-1][0], max(merged[-1][1], span[1]), "")
            else:
                merged.append(span)
        for index, (start, end, new) in enumerate(merged):
            # Dropped items that end a flow mapping took only the commas after them; the
            # one before the first of them must go too: `{a: 1, x: 2, y: 3}` -> `{a: 1}`.
            before = re.search(r"\s*,\s*$", text[:start])
            if not new and before and re.match(r"\s*[}\]]", text[end:]):
                merged[index] = (before.start(), end, new)
        for start, end, new in reversed(merged):
            text = text[:start] + new + text[end:]
        return f"write line {number} as:  {text.strip()}"

    def spans(self, loc: Loc, edit: Edit, text: str, number: int) -> list[Span] | None:
        """The spans of `edit` in line `number`, or None when its key or value cannot be
        found there as written."""
        start = self.pos.keys[loc][1] - 1
        old_key = str(loc[-1])
        if not text[start:].startswith(old_key):
            return None
        at, end = self.pos.values.get(loc), self.pos.ends.get(loc)
        value_span = None
        if at is not None and end is not None and at[0] == end[0] == number \
                and start < at[1] <= end[1] <= len(text) + 1:
            value_span = (at[1] - 1, end[1] - 1)
        if edit.drop:
            if value_span is None:
                return None
            stop = value_span[1]
            # Take one separating comma along, the one after unless the key comes last:
            # `{a: 1, old: 2, b: 3}` -> `{a: 1, b: 3}`, `{a: 1, old: 2}` -> `{a: 1}`.
            after = re.match(r"\s*,\s*", text[stop:])
            before = re.search(r"\s*,\s*$", text[:start])
            if after:
                stop += after.end()
            elif before:
                start = before.start()
            return [(start, stop, "")]
        found = []
        if edit.new_key is not None:
            found.append((start, start + len(old_key), edit.new_key))
        if edit.new_value is not KEEP:
            if value_span is None:
                return None
            found.append((*value_span, dump(edit.new_value)))
        return found


def get(data: Any, loc: Loc) -> Any:
    for part in loc:
        data = data[part]
    return data


def dump(value: Any) -> str:
    """`value` as YAML that reads back the same inside a flow mapping too: a corrected
    line may be `- {type: ModelCheckpoint, filepath: ...}`, where `{` and `,` end a plain
    scalar."""
    if isinstance(value, str) and re.search(r"[,\[\]{}#&*!|>'\"%@`:]", value):
        return "'" + value.replace("'", "''") + "'"
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()
