"""Did-you-mean suggestions for names a user typed."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# Short names people type for a longer one that string similarity cannot find: `lr` shares
# one letter with `learning_rate`. Keyed and valued by _key() spelling.
_ABBREVIATIONS = {"lr": "learningrate", "acc": "accuracy", "valacc": "valaccuracy",
                  "vallr": "learningrate"}


def close_matches(word: str, choices: Iterable[object], n: int = 3) -> list[str]:
    """The choices closest to `word`, best first, ignoring case, '_' and '-': `earlystopping`
    and `Early_Stopping` both find `EarlyStopping`.

    Ranked: the same name spelled differently; a known abbreviation (`lr`); two neighbouring
    letters swapped; one letter wrong, missing or extra; then by similarity. Similarity
    alone ranks `Adamax` above `Adam` for `Adma`: difflib counts the shared `ad` and `ma`
    and is blind to the swap a typist makes.
    """
    word = str(word)
    by_key: dict[str, str] = {}
    for choice in map(str, choices):
        # Keras spells many names twice (`SparseCategoricalCrossentropy` and
        # `sparse_categorical_crossentropy`); offer the spelling closest to the user's.
        known = by_key.get(_key(choice))
        if known is None or _ratio(word, choice) > _ratio(word, known):
            by_key[_key(choice)] = choice
    target = _key(word)

    def rank(key: str) -> tuple[int, float]:
        if key == target:
            tier = 0  # differs only in case or separators: surely meant
        elif _ABBREVIATIONS.get(target) == key:
            tier = 1
        elif len(target) < 3:
            tier = 4  # two letters are one slip away from too much
        elif _swapped(target, key):
            tier = 2
        elif _one_edit(target, key):
            tier = 3
        else:
            tier = 4
        return tier, -_ratio(key, target)  # in the order difflib compares

    if not by_key or word in by_key.values():
        return []  # nothing to offer, or a name that exists and needs no suggestion
    similar = difflib.get_close_matches(target, list(by_key), n=len(by_key), cutoff=0.6)
    candidates = set(similar) | {key for key in by_key if rank(key)[0] < 4}
    # Ties go to the spelling closest with case kept (`AxC` -> `AUC`, not `acc`).
    ranked = sorted(candidates, key=lambda key: (*rank(key), -_ratio(by_key[key], word), key))
    return [by_key[key] for key in ranked if by_key[key] != word][:n]


def _swapped(a: str, b: str) -> bool:
    """b is a with two neighbouring letters swapped: the commonest typing slip."""
    if len(a) != len(b):
        return False
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    return (len(diff) == 2 and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])


def _one_edit(a: str, b: str) -> bool:
    """b is a with one letter changed, added or dropped."""
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    if abs(len(a) - len(b)) != 1:
        return False
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def _key(text: str) -> str:
    return text.lower().replace("_", "").replace("-", "")


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    """' (did you mean 'val_accuracy'?)' or ''."""
    hits = close_matches(str(word), choices, n=1)
    return f" (did you mean {hits[0]!r}?)" if hits else ""
