"""Did-you-mean suggestions for names a user typed."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    choices = list(choices)
    by_lower = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(word.lower(), list(by_lower), n=n, cutoff=0.6)
    return [by_lower[h] for h in hits]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'val_accuracy'?)' or ''."""
    hits = close_matches(str(word), choices, n=1)
    return f" (did you mean {hits[0]!r}?)" if hits else ""
