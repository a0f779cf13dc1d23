"""Did-you-mean suggestions for names a user typed."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(word: str, choices: Iterable[object], n: int = 3) -> list[str]:
    """The choices closest to `word`, best first, ignoring case, '_' and '-': `earlystopping`
    and `Early_Stopping` both find `EarlyStopping`."""
    word = str(word)
    by_key: dict[str, str] = {}
    for choice in map(str, choices):
        # Keras spells many names twice (`SparseCategoricalCrossentropy` and
        # `sparse_categorical_crossentropy`); offer the spelling closest to the user's.
        known = by_key.get(_key(choice))
        if known is None or _ratio(word, choice) > _ratio(word, known):
            by_key[_key(choice)] = choice
    target = _key(word)
    if target in by_key and by_key[target] != word:
        exact = [by_key[target]]  # differs only in case or separators: surely meant
    else:
        exact = []
    hits = difflib.get_close_matches(target, list(by_key), n=n, cutoff=0.6)
    found = exact + [by_key[h] for h in hits if by_key[h] not in exact and by_key[h] != word]
    return found[:n]


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def _key(text: str) -> str:
    return text.lower().replace("_", "").replace("-", "")


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    """' (did you mean 'val_accuracy'?)' or ''."""
    hits = close_matches(str(word), choices, n=1)
    return f" (did you mean {hits[0]!r}?)" if hits else ""
