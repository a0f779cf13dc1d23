"""Random damage to valid configs never crashes cbrun: exit code 0 or 2, no traceback, and
every problem has a position (file, line and column) or names the `--set` that caused it.

Four kinds of damage: structural mutations of the parsed data (deleted keys, unknown keys,
wrong types, random scalars, random subtrees), random edits of the YAML text (tokens
inserted anywhere, lines dropped), random text built from YAML's own punctuation, and random
`--set KEY=VALUE` overrides of the demo config.

Examples are derived from the test's name (derandomize), so a failure seen once is seen on
every run and on every machine.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import cli_output
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbrun.config.load import load_config
from cbrun.errors import ConfigError

# The demo config, as shipped.
DESIGN = (Path(__file__).resolve().parents[1] / "configs" / "digits.yaml").read_text()

SCHEDULED = """\
name: scheduled
data: {source: digits, validation_split: 0.1}
model:
  input_shape: [64]
  layers: [{type: Dense, units: 10, activation: softmax}]
compile:
  optimizer: sgd
  loss: sparse_categorical_crossentropy
  metrics: [accuracy, {type: AUC, name: auc}]
fit: {epochs: 3, steps_per_epoch: 5, class_weight: {0: 1.0, 1: 2.0}}
callbacks:
  - type: LearningRateScheduler
    schedule: {kind: cosine, initial: 0.01, decay_epochs: 3}
  - {type: EarlyStopping, monitor: val_auc, mode: max}
  - {type: TerminateOnNaN}
"""

VALID = [yaml.safe_load(DESIGN), yaml.safe_load(SCHEDULED)]
TEXTS = [DESIGN, SCHEDULED]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """One folder for every example: hypothesis refuses function-scoped fixtures, and
    pytest removes the folder with its other temporary ones."""
    return tmp_path_factory.mktemp("fuzz")

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
    st.sampled_from(["val_loss", "val_acc", "auto", "epoch", "x.h5", "Dense", "", "1e-5",
                     "../up", "{val_loss}", "~", "yes", "null"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=8), st.integers(0, 3)), inner, max_size=3)),
    max_leaves=8)


def _paths(node: Any, loc: tuple = ()) -> list[tuple]:
    found = [loc] if loc else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, loc + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, loc + (index,))
    return found


def _parent(data: Any, loc: tuple) -> Any:
    for part in loc[:-1]:
        data = data[part]
    return data


@st.composite
def mutated_data(draw) -> str:
    data = copy.deepcopy(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        if not paths:
            break
        loc = draw(st.sampled_from(paths))
        parent = _parent(data, loc)
        action = draw(st.sampled_from(["delete", "replace", "unknown", "retype"]))
        if action == "delete":
            del parent[loc[-1]]
        elif action == "replace":
            parent[loc[-1]] = draw(values)
        elif action == "unknown" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(scalars)
        else:
            old = parent[loc[-1]]
            parent[loc[-1]] = draw(values.filter(lambda v, o=old: type(v) is not type(o)))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


TOKENS = ["-", ":", " ", "  ", "\n", "[", "]", "{", "}", ",", "&a", "*a", "!!python/object:os",
          "!!int", "!tag", "#", "'", '"', "key", "type", "1", "0.5", "\t", "---", "<<:", "? ",
          "|", ">", "%YAML 1.1", "null", "~", "\\", "\x00", "\x07", "é", "callbacks",
          "monitor: val_acc", "period: 2", "lr: 0.1"]


@st.composite
def mutated_text(draw) -> str:
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            lines = text.splitlines(keepends=True)
            if lines:
                del lines[draw(st.integers(0, len(lines) - 1))]
            text = "".join(lines)
        else:
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at:]
    return text


random_yaml = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)


def _check(work: Path, capsys, text: str) -> None:
    path = work / "fuzz.yaml"
    path.write_bytes(text.encode("utf-8"))
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.file == str(path)
            assert problem.line is not None and problem.column is not None, problem
            assert problem.line >= 1 and problem.column >= 1
            # The rendered message starts where the problem is: file:line:col.
            assert problem.render().startswith(f"{path}:{problem.line}:{problem.column}"), \
                problem.render()
    code, out, err = cli_output(capsys, "validate", path)  # fails on a traceback
    assert code in (0, 2), out + err


FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                # capsys is read whole after every example, so sharing it is safe
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.function_scoped_fixture])


@FUZZ
@given(mutated_data())
def test_mutated_configs_fail_cleanly(work, capsys, text):
    _check(work, capsys, text)


@FUZZ
@given(mutated_text())
def test_edited_yaml_text_fails_cleanly(work, capsys, text):
    _check(work, capsys, text)


@FUZZ
@given(random_yaml)
def test_random_yaml_fails_cleanly(work, capsys, text):
    _check(work, capsys, text)


# ---------------------------------------------------------------- --set KEY=VALUE

def _key_forms(loc: tuple) -> list[str]:
    """The ways a user may write one location: dotted, bracketed, a callback by its type."""
    dotted = ".".join(map(str, loc))
    forms = [dotted]
    if len(loc) > 1 and isinstance(loc[1], int):
        forms.append(f"{loc[0]}[{loc[1]}]" + "".join(f".{p}" for p in loc[2:]))
        item = VALID[0][loc[0]][loc[1]]
        if isinstance(item, dict) and "type" in item:
            forms.append(".".join(map(str, (loc[0], item["type"], *loc[2:]))))
    return forms


SET_KEYS = sorted({form for loc in _paths(VALID[0]) for form in _key_forms(loc)})


@st.composite
def set_keys(draw) -> str:
    key = draw(st.sampled_from(SET_KEYS))
    change = draw(st.sampled_from(["none", "upper", "typo", "deeper", "index", "random"]))
    if change == "upper":
        key = key.upper()
    elif change == "typo" and len(key) > 1:
        at = draw(st.integers(0, len(key) - 1))
        key = key[:at] + key[at + 1:]
    elif change == "deeper":
        key += "." + draw(st.sampled_from(["x", "0", "[1]", "type", "", "patience"]))
    elif change == "index":
        key = key.split(".")[0] + draw(st.sampled_from([".9", "[-1]", ".-9", "[0][0]",
                                                        ".EarlyStopping"]))
    elif change == "random":
        key = draw(st.text(max_size=12))
    return key


set_values = st.one_of(
    scalars.map(lambda v: yaml.safe_dump(v, default_flow_style=True).removesuffix("\n...\n")
                .strip()),
    values.map(lambda v: yaml.safe_dump(v, default_flow_style=True, width=10**6).strip()),
    st.sampled_from(TOKENS), st.text(max_size=12))
overrides = st.lists(st.tuples(set_keys(), st.sampled_from(["=", "=", ""]), set_values)
                     .map("".join), min_size=1, max_size=3)


@FUZZ
@given(overrides)
def test_random_set_overrides_fail_cleanly_and_name_their_set(work, capsys, sets):
    path = work / "digits.yaml"
    path.write_text(DESIGN)
    args = ["validate", "--json", str(path)]
    for text in sets:
        args += ["--set", text]
    code, out, err = cli_output(capsys, *args)  # fails on a traceback
    assert code in (0, 2), out + err
    labels = {f"--set {text}" for text in sets}
    for problem in json.loads(out)["files"][0]["problems"]:
        if problem["file"] in labels:
            continue
        assert problem["file"] == str(path) and problem["line"] and problem["column"], problem
        # A line of the file must hold what it points at: a section only a --set wrote
        # (`--set FIT.epochs=5`) has no line, and pointing at one would mislead.
        top = problem["field"].split(".")[0].split("[")[0]
        assert top in VALID[0] or top == "(top level)", (sets, problem)


def test_the_seeds_are_valid(tmp_path):
    # The mutations start from valid configs; otherwise they would prove little.
    for text in TEXTS:
        path = tmp_path / "seed.yaml"
        path.write_text(text)
        load_config(path)
