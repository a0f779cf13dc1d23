"""Where every value of a config came from: its line and column in the file, or the
`--set` that wrote it. Errors found anywhere (legacy names, the schema, monitors) are
placed through `Positions.problem`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cbrun.errors import Problem

Loc = tuple[Any, ...]


@dataclass
class Positions:
    """Maps a value's location (('callbacks', 2, 'patience')) to its 1-based line/column.

    `origins` marks the subtrees that a `--set` override wrote: an error inside one names
    that override instead of a line of the file, which no longer holds the value.
    `sources` names the file of a position when a config is composed of several
    (config/compose.py); a position it does not list is in `file`.
    """

    file: str
    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    ends: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    origins: dict[Loc, str] = field(default_factory=dict)
    sources: dict[Loc, str] = field(default_factory=dict)

    def lookup(self, loc: Loc, prefer_key: bool = False) -> tuple[int | None, int | None]:
        """The nearest known position: the node itself, else its closest ancestor."""
        return self.locate(loc, prefer_key)[1:]

    def locate(self, loc: Loc, prefer_key: bool = False
               ) -> tuple[str, int | None, int | None]:
        """(file, line, column) of the nearest known position."""
        probe = tuple(loc)
        tables = (self.keys, self.values) if prefer_key else (self.values, self.keys)
        while True:
            for table in tables:
                if probe in table:
                    return (self.sources.get(probe, self.file), *table[probe])
            if not probe:
                return self.file, None, None
            probe = probe[:-1]

    def origin(self, loc: Loc) -> str | None:
        """The `--set` that wrote `loc` or one of its ancestors; else, when the file has no
        `loc` of its own, the `--set` that wrote something inside it (`--set FIT.epochs=5`
        made the unknown key FIT, which is not in the file)."""
        probe = tuple(loc)
        while True:
            if probe in self.origins:
                return self.origins[probe]
            if not probe:
                break
            probe = probe[:-1]
        loc = tuple(loc)
        if loc and loc not in self.values and loc not in self.keys:
            for written, label in self.origins.items():
                if written[:len(loc)] == loc:
                    return label
        return None

    def to_json(self) -> dict[str, Any]:
        """For another process of a job (cbrun/commands/job.py), which places its own
        config errors as process 0 would."""
        return {"file": self.file, **{name: [[list(loc), value] for loc, value in
                                             getattr(self, name).items()]
                                      for name in ("values", "keys", "ends", "origins",
                                                   "sources")}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Positions:
        return cls(data["file"], **{
            name: {tuple(loc): tuple(value) if isinstance(value, list) else value
                   for loc, value in data[name]}
            for name in ("values", "keys", "ends", "origins", "sources")})

    def problem(self, loc: Loc, message: str, **extra: Any) -> Problem:
        at_key = extra.pop("at_key", False)
        origin = self.origin(loc)
        if origin is not None:
            return Problem(loc=tuple(loc), message=message, file=origin, **extra)
        file, line, col = self.locate(loc, prefer_key=at_key)
        return Problem(loc=tuple(loc), message=message, file=file, line=line, column=col,
                       **extra)

    def alias(self, new: Loc, old: Loc) -> None:
        """Let `new` (a renamed key) share the position of `old`, where the user wrote it."""
        for table in (self.values, self.keys, self.ends, self.sources):
            if old in table and new not in table:
                table[new] = table[old]

    def alias_tree(self, new: Loc, old: Loc) -> None:
        """alias() for `old` and everything inside it (a moved section), `--set`s included."""
        size = len(old)
        for table in (self.values, self.keys, self.ends, self.origins, self.sources):
            for loc in [known for known in table if known[:size] == old]:
                table.setdefault(new + loc[size:], table[loc])


@dataclass
class LoadedYaml:
    data: Any
    positions: Positions
    text: str
