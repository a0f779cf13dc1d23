"""Declarative learning-rate schedules: exact values per epoch, and what is refused."""

from __future__ import annotations

import itertools
import math

import pytest
from pydantic import TypeAdapter, ValidationError

from cbrun.callbacks.schedules import Schedule

SCHEDULE = TypeAdapter(Schedule)


def rates(spec: dict, epochs: int) -> list[float]:
    schedule = SCHEDULE.validate_python(spec)
    return [schedule(e) for e in range(epochs)]


def test_step_drops_every_n_epochs():
    got = rates({"kind": "step", "initial": 0.1, "factor": 0.5, "every": 2}, 6)
    assert got == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_step_with_warmup_ramps_then_starts_the_schedule_at_zero():
    got = rates({"kind": "step", "initial": 0.1, "factor": 0.1, "every": 1,
                 "warmup_epochs": 3}, 6)
    assert got == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.01, 0.001])


def test_exponential_multiplies_each_epoch():
    got = rates({"kind": "exponential", "initial": 0.2, "rate": 0.9}, 4)
    assert got == pytest.approx([0.2, 0.18, 0.162, 0.1458])


def test_cosine_reaches_alpha_times_initial_and_stays():
    got = rates({"kind": "cosine", "initial": 1.0, "decay_epochs": 4, "alpha": 0.2}, 7)
    half_way = 0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi / 2))
    assert got[0] == pytest.approx(1.0)
    assert got[2] == pytest.approx(half_way) == pytest.approx(0.6)
    assert got[4:] == pytest.approx([0.2, 0.2, 0.2])
    assert all(a > b for a, b in itertools.pairwise(got[:5]))  # strictly decreasing while decaying


def test_cosine_matches_the_example_config():
    got = rates({"kind": "cosine", "initial": 0.003, "decay_epochs": 4, "alpha": 0.1,
                 "warmup_epochs": 1}, 5)
    assert got == pytest.approx([0.0015, 0.003, 0.0026046, 0.00165, 0.0006954], rel=1e-4)


def test_piecewise_switches_at_each_boundary():
    got = rates({"kind": "piecewise", "boundaries": [2, 4], "values": [1.0, 0.5, 0.25]}, 6)
    assert got == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_yaml_exponent_strings_are_numbers():
    # PyYAML reads `1e-3` (no dot) as a string; schedules accept it as the number it means.
    schedule = SCHEDULE.validate_python({"kind": "exponential", "initial": "1e-3", "rate": 1})
    assert schedule(3) == pytest.approx(1e-3)


def test_returns_python_floats_as_keras_requires():
    schedule = SCHEDULE.validate_python({"kind": "piecewise", "boundaries": [1],
                                         "values": [1, 2]})
    assert all(type(schedule(e)) is float for e in range(3))


def test_negative_epoch_is_refused():
    schedule = SCHEDULE.validate_python({"kind": "step", "initial": 0.1, "factor": 0.5,
                                         "every": 1})
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        schedule(-1)


@pytest.mark.parametrize("spec, expected", [
    ({"kind": "step", "initial": 0.1, "factor": 0, "every": 1}, ["factor", "greater than 0"]),
    ({"kind": "step", "initial": 0.1, "factor": 1.5, "every": 1},
     ["factor", "less than or equal to 1"]),
    ({"kind": "step", "initial": 0.1, "factor": 0.5, "every": 0}, ["every", "greater than 0"]),
    ({"kind": "step", "initial": 0, "factor": 0.5, "every": 1}, ["initial", "greater than 0"]),
    ({"kind": "exponential", "initial": 0.1, "rate": 1.1}, ["rate", "less than or equal to 1"]),
    ({"kind": "cosine", "initial": 0.1, "decay_epochs": 0}, ["decay_epochs", "greater than 0"]),
    ({"kind": "cosine", "initial": 0.1, "decay_epochs": 5, "alpha": 2},
     ["alpha", "less than or equal to 1"]),
    ({"kind": "cosine", "initial": 0.1, "decay_epochs": 5, "warmup_epochs": -1},
     ["warmup_epochs", "greater than or equal to 0"]),
    ({"kind": "piecewise", "boundaries": [5, 5], "values": [1, 2, 3]},
     ["strictly increasing", "[5, 5]"]),
    ({"kind": "piecewise", "boundaries": [5, 10], "values": [1, 2]},
     ["len(boundaries) + 1 = 3", "got 2"]),
    ({"kind": "piecewise", "boundaries": [], "values": [1]}, ["boundaries", "at least 1"]),
    ({"kind": "piecewise", "boundaries": [0], "values": [1, 2]},
     ["boundaries", "greater than 0"]),
    ({"kind": "piecewise", "boundaries": [3], "values": [1, 2], "warmup_epochs": 1},
     ["warmup_epochs", "Extra inputs are not permitted"]),
    ({"kind": "step", "initial": 0.1, "factor": 0.5, "every": True}, ["every", "integer"]),
    ({"kind": "linear", "initial": 0.1}, ["'linear'", "'step'", "'cosine'"]),
    ({"initial": 0.1}, ["kind"]),
])
def test_bad_schedules_are_refused_with_the_field_and_rule(spec, expected):
    with pytest.raises(ValidationError) as info:
        SCHEDULE.validate_python(spec)
    text = "\n".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in info.value.errors())
    for part in expected:
        assert part in text
