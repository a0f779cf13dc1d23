"""Errors a user can cause, and how they are shown.

Exit codes: 2 for config and usage errors, 1 for failures during a run, 130 for Ctrl-C,
75 for a run stopped by SIGTERM, SIGUSR1 or its time limit (EX_TEMPFAIL: resume it). A user error prints one message and no traceback; a bug keeps its
traceback, so nothing here is meant to catch programming errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143  # a process that had nothing to save (the sweep driver)
# sysexits' EX_TEMPFAIL, "try again later": a run stopped by SIGTERM, SIGUSR1 or its time
# limit, its state saved at the batch where it stopped. A job script requeues on it.
EXIT_REQUEUE = 75

_MISSING = object()


def format_loc(loc: tuple[Any, ...]) -> str:
    """('callbacks', 2, 'patience') -> 'callbacks[2].patience'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


@dataclass
class Problem:
    """One thing wrong in a config: where it is, what was given, what is allowed."""

    loc: tuple[Any, ...]
    message: str
    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    given: Any = field(default=_MISSING, repr=False)
    hint: str | None = None

    @property
    def field_path(self) -> str:
        return format_loc(self.loc)

    @property
    def has_given(self) -> bool:
        return self.given is not _MISSING

    def position(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def render(self) -> str:
        text = f"{self.position()}: {self.field_path}: {self.message}"
        if self.has_given and self.given is not None and repr(self.given) not in self.message:
            text += f" (given: {self.given!r})"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "field": self.field_path,
            "message": self.message,
        }
        if self.hint:
            data["hint"] = self.hint
        if self.has_given:
            data["given"] = self.given if _is_jsonable(self.given) else repr(self.given)
        return data


def _is_jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, dict))


class CbrunError(Exception):
    """Base of every error that is the user's to fix; shown without a traceback."""

    exit_code = EXIT_FAILURE


class UsageError(CbrunError):
    exit_code = EXIT_USAGE


class ConfigError(CbrunError):
    """One or more problems in a config file, all reported at once."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        head = "1 problem" if count == 1 else f"{count} problems"
        body = "\n".join(p.render() for p in self.problems)
        return f"config error ({head}):\n{body}"


class RunError(CbrunError):
    """A run could not proceed (missing data file, refused resume, ...)."""

    exit_code = EXIT_FAILURE
