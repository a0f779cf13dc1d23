"""The registry: built-ins, third-party specs from entry points, and no TensorFlow import."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from conftest import tiny_config, write_config
from pydantic import TypeAdapter

from cbrun.callbacks.base import CallbackSpec
from cbrun.callbacks.registry import PLUGIN_PROBLEMS, SPECS, CallbackConfig, spec_name
from tests.helpers.light import run_cbrun, run_python

PLUGIN = '''
from typing import Literal

from pydantic import Field

from cbrun.callbacks.base import CallbackSpec


class HeartbeatSpec(CallbackSpec):
    """Counts epochs. Fields: every (Defaults to `1`)."""

    type: Literal["Heartbeat"]
    every: int = Field(1, gt=0, description="Epochs between beats. Defaults to `1`.")
    summary = "Count epochs."

    def build(self, ctx):
        import keras

        class Heartbeat(keras.callbacks.Callback):
            def __init__(self, every):
                super().__init__()
                self.every = every

        return Heartbeat(self.every)


class ClashSpec(HeartbeatSpec):
    type: Literal["EarlyStopping"]


class WrongTagSpec(HeartbeatSpec):
    type: Literal["Other"]


not_a_spec = object()
'''

ENTRY_POINTS = """
[cbrun.callbacks]
Heartbeat = thirdparty_cb:HeartbeatSpec
EarlyStopping = thirdparty_cb:ClashSpec
Broken = thirdparty_cb.missing:Nope
NotASpec = thirdparty_cb:not_a_spec
Mislabeled = thirdparty_cb:WrongTagSpec
"""

PROBE = '''
import json, sys
from pathlib import Path
from pydantic import TypeAdapter, ValidationError
from cbrun.callbacks.registry import CallbackConfig, PLUGIN_PROBLEMS, SPECS
from cbrun.config.base import BuildContext

adapter = TypeAdapter(list[CallbackConfig])
specs = adapter.validate_python([{"type": "Heartbeat", "every": 3},
                                 {"type": "EarlyStopping", "patience": 2}])
try:
    adapter.validate_python([{"type": "Heartbeat", "every": 0}])
    refused = None
except ValidationError as exc:
    refused = [list(map(str, e["loc"])) + [e["msg"]] for e in exc.errors()]
built = specs[0].build(BuildContext(run_dir=Path("."), config_dir=Path(".")))
print(json.dumps({
    "names": list(SPECS),
    "problems": PLUGIN_PROBLEMS,
    "early_stopping_module": type(specs[1]).__module__,
    "refused": refused,
    "built": [type(built).__name__, built.every],
}))
'''


def write_plugin(root: Path) -> None:
    (root / "thirdparty_cb").mkdir()
    (root / "thirdparty_cb" / "__init__.py").write_text(PLUGIN)
    dist = root / "thirdparty_cb-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-cb\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)


def test_plugin_joins_the_union_and_broken_ones_are_skipped_with_a_reason(tmp_path):
    write_plugin(tmp_path)
    result = run_python(PROBE, path=(tmp_path,), env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    out = json.loads(result.out.strip().splitlines()[-1])

    assert "Heartbeat" in out["names"]
    assert out["built"] == ["Heartbeat", 3]
    assert out["refused"][0][:2] == ["0", "Heartbeat"]
    assert out["refused"][0][-1] == "Input should be greater than 0"
    # The built-in keeps its name; the clashing plugin does not replace it.
    assert out["early_stopping_module"] == "cbrun.callbacks.early_stopping"
    for name in ("Broken", "NotASpec", "Mislabeled"):
        assert name not in out["names"]

    problems = "\n".join(out["problems"])
    assert "'EarlyStopping' (thirdparty_cb:ClashSpec, from thirdparty-cb) has the name of " \
           "cbrun's built-in" in problems
    assert "'Broken' (thirdparty_cb.missing:Nope, from thirdparty-cb) failed to load: " \
           "ModuleNotFoundError" in problems
    assert "'NotASpec'" in problems and "is not a subclass of" in problems
    assert "'Mislabeled'" in problems and "declares type 'Other', not 'Mislabeled'" in problems
    # Warned, not crashed: the user sees the reasons but no traceback.
    assert "PluginWarning" in result.err
    assert "Traceback" not in result.err


def test_a_plugin_callback_validates_without_tensorflow(tmp_path):
    write_plugin(tmp_path)
    good, bad = (write_config(tmp_path, tiny_config(callbacks=[
        {"type": "Heartbeat", "every": every}]), f"every{every}.yaml") for every in (3, 0))
    result = run_cbrun(["validate", good], ["validate", bad], path=(tmp_path,))
    assert result.codes == [0, 2], result.commands
    assert "callbacks[0].every: Input should be greater than 0" in result.commands[1].out
    assert result.heavy == []


def test_importing_the_registry_leaves_tensorflow_out():
    assert run_python("import cbrun.callbacks.registry").heavy == []


def test_builtin_names_match_their_classes():
    assert PLUGIN_PROBLEMS == []
    assert {"EarlyStopping", "ModelCheckpoint", "CSVLogger", "TensorBoard",
            "ReduceLROnPlateau", "LearningRateScheduler", "TerminateOnNaN", "SwapEMAWeights",
            "RemoteMonitor", "Custom", "BackupAndRestore", "ProgbarLogger", "LambdaCallback",
            "History", "BaseLogger", "PredictionSamples"} <= set(SPECS)
    for name, cls in SPECS.items():
        assert issubclass(cls, CallbackSpec)
        assert spec_name(cls) == name


def test_the_union_picks_the_class_by_type():
    adapter = TypeAdapter(list[CallbackConfig])
    specs = adapter.validate_python([{"type": "CSVLogger"}, {"type": "TerminateOnNaN"}])
    assert [type(s) for s in specs] == [SPECS["CSVLogger"], SPECS["TerminateOnNaN"]]


def test_cross_checks_run_through_the_config_loader():
    from cbrun.config.load import validate_data
    from cbrun.config.yamlio import load_yaml_text
    from cbrun.errors import ConfigError

    def problems(callbacks: str, optimizer: str = "{type: Adam, learning_rate: 0.001}"):
        text = textwrap.dedent("""\
            name: t
            data: {source: digits, validation_split: 0.2}
            model: {input_shape: [64], layers: [{type: Dense, units: 10}]}
            compile: {optimizer: %s, loss: sparse_categorical_crossentropy,
                      metrics: [accuracy]}
            fit: {epochs: 1}
            callbacks:
            %s""") % (optimizer, textwrap.indent(callbacks, "  "))
        try:
            validate_data(load_yaml_text(text, "t.yaml"))
        except ConfigError as exc:
            return [(p.loc, p.message) for p in exc.problems]
        return []

    [(loc, message)] = problems("- type: SwapEMAWeights\n")
    assert loc == ("callbacks", 0)
    assert "use_ema: true" in message and "'Adam'" in message
    assert problems("- type: SwapEMAWeights\n", "{type: Adam, use_ema: true}") == []

    [(loc, message)] = problems("- type: ModelCheckpoint\n"
                                "  filepath: 'c/{epoch}-{val_acc:.2f}.keras'\n")
    assert loc == ("callbacks", 0, "filepath")
    assert "'val_acc'" in message and "val_accuracy" in message

    [(loc, message)] = problems("- type: ReduceLROnPlateau\n"
                                "- type: LearningRateScheduler\n"
                                "  schedule: {kind: exponential, initial: 0.01, rate: 0.9}\n")
    assert loc == ("callbacks", 1)
    assert "undoes every reduction ReduceLROnPlateau makes" in message


def test_custom_knows_every_keras_callback_cbrun_declares_by_type():
    """Custom refuses a Keras class that has a `type:` of its own; it keeps their names
    itself (the registry holds Custom, so Custom cannot ask it): the two must agree."""
    import keras

    from cbrun.callbacks.custom import KERAS_DECLARED, CustomSpec
    from cbrun.callbacks.registry import BUILTIN
    from cbrun.callbacks.unsupported import UnsupportedSpec

    declared = {spec_name(spec) for spec in BUILTIN if spec is not CustomSpec
                and not issubclass(spec, UnsupportedSpec)
                and hasattr(keras.callbacks, spec_name(spec))}
    assert declared == KERAS_DECLARED
