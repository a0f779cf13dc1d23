"""The `fit:` section: how long and how to train, how often the state is saved inside an
epoch, and how long a process may train."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from cbrun.config.base import StrictModel

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?"
                       r"(?:(\d+(?:\.\d+)?)s)?")
# The state is saved inside an epoch this often by default: the training thread copies the
# variables (about 0.1 s for a 25M-parameter model, bench/bench_state.py) and a thread
# writes them, so a save every ten minutes costs far less than 2% of the time.
DEFAULT_STATE_EVERY = "10m"


def seconds(text: str) -> float | None:
    """'2h30m' -> 9000.0, '90s' -> 90.0, '1.5h' -> 5400.0; None for anything else."""
    text = text.strip().lower().replace(" ", "")
    found = _DURATION.fullmatch(text)
    if not text or found is None or not any(found.groups()):
        return None
    return sum(float(v) * _UNITS[u] for v, u in zip(found.groups(), "dhms", strict=True) if v)


def _duration(value: Any, key: str, example: str) -> Any:
    if value is None:
        return None
    if isinstance(value, str) and (secs := seconds(value)) is not None and secs > 0:
        return value
    raise ValueError(f"{key} is a duration such as {example}: hours, minutes and seconds as "
                     f"{{N}}h{{N}}m{{N}}s (d for days); got {value!r}")


class FitConfig(StrictModel):
    epochs: int = Field(gt=0, strict=True, description="Epochs to train in total.")
    steps_per_epoch: int | None = Field(
        None, gt=0, description="Cap on batches per epoch; defaults to one pass over the data.")
    validation_freq: int = Field(
        1, gt=0, description="Validate every N epochs. Defaults to 1.")
    validation_steps: int | None = Field(
        None, gt=0, strict=True, description="Cap on the batches of each validation; "
                                             "defaults to the whole validation split.")
    overfit_batches: int | None = Field(
        None, gt=0, strict=True, description=(
            "Train on the same first N batches of the training split every epoch, in the "
            "same order, and validate on them too: a model that cannot fit them (training "
            "accuracy 1.0, a loss near 0) is broken. `cbrun train --overfit-batches N` sets "
            "it. Defaults to none."))
    class_weight: dict[int, float] | None = Field(
        None, description="Weight of each class index in the loss. Defaults to none.")
    state_every: int | str | None = Field(
        DEFAULT_STATE_EVERY, description=(
            "How often the run's state is also saved inside an epoch, so that a resume (after "
            "a kill, a preemption, a time limit) continues from that batch, not from the "
            "epoch's start: a number of batches (500) or a duration (10m, 1h). The state is "
            "always saved at every epoch's end as well. null: only at epoch ends. Defaults "
            f"to {DEFAULT_STATE_EVERY}."))
    max_time: str | None = Field(
        None, description=(
            "The most this process trains, e.g. 2h30m: the run then stops at the next batch "
            "(its state saved there), recorded `interrupted` by the time limit, and `cbrun "
            "resume` continues it with the same budget again. Defaults to none."))

    @field_validator("state_every", mode="before")
    @classmethod
    def _state_every(cls, value: Any) -> Any:
        if value is None or (type(value) is int and value > 0):
            return value
        if isinstance(value, str):
            return _duration(value, "state_every", "10m or 1h30m (or a number of batches)")
        raise ValueError(f"state_every is a positive number of batches or a duration such as "
                         f"10m; got {value!r}")

    @field_validator("max_time", mode="before")
    @classmethod
    def _max_time(cls, value: Any) -> Any:
        return _duration(value, "max_time", "2h30m or 45m")

    @property
    def state_every_batches(self) -> int | None:
        return self.state_every if isinstance(self.state_every, int) else None

    @property
    def state_every_seconds(self) -> float | None:
        return seconds(self.state_every) if isinstance(self.state_every, str) else None

    @property
    def max_seconds(self) -> float | None:
        return seconds(self.max_time) if self.max_time else None
