"""What a tracked run is given: the resolved config as flat params, and the events read
back from log.csv and run.json."""

from __future__ import annotations

import math
from typing import Any

from cbrun.run.logs import TrainingLog

# MLflow's limit on a param value; W&B takes longer ones but a config value this long
# (an inline list of layers) says nothing more when cut.
VALUE_LIMIT = 6000


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """{'fit': {'epochs': 3}, 'callbacks': [{'type': 'CSVLogger'}]} ->
    {'fit.epochs': '3', 'callbacks.0.type': 'CSVLogger'}; an empty dict or list is kept as
    its text so that a key which is there but empty stays visible."""
    out: dict[str, str] = {}
    if isinstance(value, dict) and value:
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        text = "null" if value is None else str(value)
        out[prefix] = text if len(text) <= VALUE_LIMIT else text[:VALUE_LIMIT - 3] + "..."
    return out


def rows(log: TrainingLog, upto: int) -> list[tuple[int, dict[str, float]]]:
    """(1-based epoch, metrics) for each row of log.csv up to epoch `upto`; an NA cell is
    left out rather than sent as NaN (Keras writes NA for a key missing that epoch)."""
    found = []
    for index, epoch in enumerate(log.epochs):
        if epoch > upto:
            break
        values = {column: log.values[column][index] for column in log.columns}
        found.append((epoch, {k: v for k, v in values.items() if not math.isnan(v)}))
    return found


def learning_rate_events(log: TrainingLog | None) -> list[str]:
    if log is None or "learning_rate" not in log.values:
        return []
    events = []
    rates = log.values["learning_rate"]
    for before, after, epoch in zip(rates, rates[1:], log.epochs[1:], strict=False):
        if not (math.isnan(before) or math.isnan(after)) and after != before:
            events.append(f"epoch {epoch}: learning rate {before:.3g} -> {after:.3g}")
    return events
