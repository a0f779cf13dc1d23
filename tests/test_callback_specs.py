"""Callback specs: YAML -> validated spec -> real Keras callback, and what is refused."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from cbrun.callbacks.registry import BUILTIN, CallbackConfig, spec_name
from cbrun.callbacks.unsupported import UnsupportedSpec
from cbrun.config.base import BuildContext
from cbrun.engine.callbacks import build_one
from cbrun.errors import ConfigError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
ADAPTER = TypeAdapter(CallbackConfig)


def parse(snippet: str):
    return ADAPTER.validate_python(yaml.safe_load(snippet))


def build(snippet: str, run_dir: Path, config_dir: Path | None = None):
    ctx = BuildContext(run_dir=run_dir, config_dir=config_dir or run_dir)
    return build_one(parse(snippet), ctx)


def tiny_model(learning_rate: float = 0.1) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate), loss="mse")
    return model


def tiny_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 4)).astype("float32"), rng.normal(size=(32, 1)).astype("float32")


# (YAML snippet, Keras class, expected attributes; "RUN/" means inside the run directory)
GOOD = [
    (("type: EarlyStopping\nmonitor: val_accuracy\npatience: 4\nmin_delta: 1e-3\nmode: max\n"
     "baseline: 0.5\nrestore_best_weights: true\nstart_from_epoch: 2\nverbose: 1"),
     keras.callbacks.EarlyStopping,
     {"monitor": "val_accuracy", "patience": 4, "min_delta": 0.001, "mode": "max",
      "baseline": 0.5, "restore_best_weights": True, "start_from_epoch": 2, "verbose": 1}),
    ("type: EarlyStopping", keras.callbacks.EarlyStopping,
     {"monitor": "val_loss", "patience": 0, "min_delta": 0, "mode": "auto", "baseline": None,
      "restore_best_weights": False, "start_from_epoch": 0}),
    (("type: ModelCheckpoint\nfilepath: checkpoints/ep{epoch:03d}-val_loss{val_loss:.3f}.keras\n"
     "monitor: val_loss\nsave_best_only: true\nmode: min\ninitial_value_threshold: 2.5"),
     keras.callbacks.ModelCheckpoint,
     {"filepath": "RUN/checkpoints/ep{epoch:03d}-val_loss{val_loss:.3f}.keras",
      "monitor": "val_loss", "save_best_only": True, "save_weights_only": False,
      "mode": "min", "save_freq": "epoch", "best": 2.5}),
    (("type: ModelCheckpoint\nfilepath: w/b{batch}.weights.h5\nsave_weights_only: true\n"
     "save_freq: 10\nmonitor: loss"), keras.callbacks.ModelCheckpoint,
     {"filepath": "RUN/w/b{batch}.weights.h5", "save_weights_only": True, "save_freq": 10}),
    ("type: CSVLogger", keras.callbacks.CSVLogger,
     {"filename": "RUN/log.csv", "sep": ",", "append": False}),
    ("type: CSVLogger\nfilename: logs/history.tsv\nseparator: \"\\t\"\nappend: true",
     keras.callbacks.CSVLogger,
     {"filename": "RUN/logs/history.tsv", "sep": "\t", "append": True}),
    ("type: TensorBoard", keras.callbacks.TensorBoard,
     {"log_dir": "RUN/tensorboard", "histogram_freq": 0, "write_graph": True,
      "update_freq": "epoch"}),
    (("type: TensorBoard\nlog_dir: tb\nhistogram_freq: 2\nwrite_images: true\n"
     "write_steps_per_second: true\nupdate_freq: batch\nprofile_batch: '3,5'"),
     keras.callbacks.TensorBoard,
     {"log_dir": "RUN/tb", "histogram_freq": 2, "write_images": True,
      "write_steps_per_second": True, "update_freq": 1}),
    ("type: TensorBoard\nupdate_freq: 50\nprofile_batch: [4, 4]", keras.callbacks.TensorBoard,
     {"update_freq": 50}),
    (("type: ReduceLROnPlateau\nmonitor: loss\nfactor: 0.5\npatience: 2\ncooldown: 1\n"
     "min_lr: 1e-6\nmin_delta: 0.01\nmode: min"), keras.callbacks.ReduceLROnPlateau,
     {"monitor": "loss", "factor": 0.5, "patience": 2, "cooldown": 1, "min_lr": 1e-6,
      "min_delta": 0.01, "mode": "min"}),
    ("type: ReduceLROnPlateau", keras.callbacks.ReduceLROnPlateau,
     {"monitor": "val_loss", "factor": 0.1, "patience": 10, "cooldown": 0, "min_lr": 0.0,
      "min_delta": 1e-4}),
    (("type: LearningRateScheduler\nverbose: 1\nschedule: {kind: step, initial: 0.1, "
     "factor: 0.5, every: 1}"), keras.callbacks.LearningRateScheduler, {"verbose": 1}),
    ("type: TerminateOnNaN", keras.callbacks.TerminateOnNaN, {"raise_error": False}),
    ("type: TerminateOnNaN\nraise_error: true", keras.callbacks.TerminateOnNaN,
     {"raise_error": True}),
    ("type: SwapEMAWeights\nswap_on_epoch: true", keras.callbacks.SwapEMAWeights,
     {"swap_on_epoch": True}),
    (("type: RemoteMonitor\nroot: https://example.org:8080\npath: /hook\nfield: payload\n"
     "headers: {X-Token: abc}\nsend_as_json: true"), keras.callbacks.RemoteMonitor,
     {"root": "https://example.org:8080", "path": "/hook", "field": "payload",
      "headers": {"X-Token": "abc"}, "send_as_json": True}),
]


@pytest.mark.parametrize("snippet, keras_class, expected", GOOD,
                         ids=[f"{i}-{s.split(chr(10))[0][6:]}" for i, (s, _, _) in
                              enumerate(GOOD)])
def test_yaml_builds_the_keras_callback_with_these_parameters(tmp_path, snippet, keras_class,
                                                              expected):
    callback = build(snippet, tmp_path)
    # ModelCheckpoint comes as a subclass that checks each path it writes (runguard).
    assert isinstance(callback, keras_class) and type(callback).__name__ == keras_class.__name__
    for attr, value in expected.items():
        if isinstance(value, str) and value.startswith("RUN/"):
            value = str(tmp_path / value[4:])
        assert getattr(callback, attr) == value, attr


def test_schedule_reaches_keras_as_a_function_of_the_epoch(tmp_path):
    callback = build("type: LearningRateScheduler\nschedule: {kind: piecewise, "
                     "boundaries: [2], values: [0.1, 0.01]}", tmp_path)
    assert [callback.schedule(e, 0.5) for e in range(4)] == [0.1, 0.1, 0.01, 0.01]


def test_learning_rate_scheduler_drives_a_real_model(tmp_path):
    callback = build("type: LearningRateScheduler\nschedule: {kind: step, initial: 0.2, "
                     "factor: 0.5, every: 1}", tmp_path)
    model = tiny_model(learning_rate=0.01)
    x, y = tiny_data()
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[callback])
    assert history.history["learning_rate"] == pytest.approx([0.2, 0.1, 0.05], rel=1e-6)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05, rel=1e-6)


def profiled_batches(log_dir: Path) -> list[int]:
    """The batches the profiles under `log_dir` hold, as TensorBoard's Profile tab lists
    them (numbered from 0 in the epoch); [] when nothing was profiled."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    found = []
    for path in log_dir.rglob("*.xplane.pb"):
        for plane in xplane_pb2.XSpace.FromString(path.read_bytes()).planes:
            batch = {k for k, v in plane.event_metadata.items() if v.name == "Profiled batch"}
            step = {k for k, v in plane.stat_metadata.items() if v.name == "step_num"}
            found += [stat.int64_value or stat.uint64_value
                      for line in plane.lines for event in line.events
                      if event.metadata_id in batch
                      for stat in event.stats if stat.metadata_id in step]
    return sorted(found)


@pytest.mark.parametrize("profile_batch, batches", [
    ("", []), ("profile_batch: 2", [1]), ("profile_batch: '3,5'", [2, 3, 4]),
    ("profile_batch: [4, 4]", [3])], ids=["off", "one", "range", "list"])
def test_profile_batch_profiles_those_batches(tmp_path, profile_batch, batches):
    """What a user opens in TensorBoard: a profile of the batches asked for (1-based in
    the YAML, as Keras counts them), and none by default."""
    callback = build(f"type: TensorBoard\nlog_dir: tb\n{profile_batch}", tmp_path)
    x, y = tiny_data()
    tiny_model().fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[callback])
    assert profiled_batches(tmp_path / "tb") == batches


def test_checkpoint_template_writes_inside_the_run_dir_even_with_braces_in_its_path(tmp_path):
    run_dir = tmp_path / "run{x}"  # Keras str.formats the whole path: these must stay literal
    callback = build("type: ModelCheckpoint\nfilepath: checkpoints/ep{epoch:02d}-{loss:.1f}"
                     ".weights.h5\nsave_weights_only: true\nmonitor: loss", run_dir)
    model = tiny_model()
    x, y = tiny_data()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[callback])
    saved = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert [name[:5] for name in saved] == ["ep01-", "ep02-"]
    assert all(name.endswith(".weights.h5") for name in saved)


def test_custom_builds_the_example_class_and_it_stops_training(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    snippet = ("type: Custom\nclass: sample_callbacks:StopAtTarget\n"
               "params: {monitor: loss, target: 1.0e9, mode: min}")
    spec = parse(snippet)
    assert spec.batch_level() is True  # unknown until the class is loaded
    callback = build_one(spec, BuildContext(run_dir=tmp_path, config_dir=CONFIGS))
    assert spec.batch_level() is True  # the spec alone still cannot know
    assert type(callback).__name__ == "StopAtTarget"
    assert isinstance(callback, keras.callbacks.Callback)
    assert (callback.monitor, callback.target, callback.mode) == ("loss", 1e9, "min")
    assert spec.batch_level(callback) is False  # it only has on_epoch_end
    model = tiny_model()
    x, y = tiny_data()
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[callback])
    assert history.epoch == [0]
    assert callback.reached_epoch == 0


def test_custom_dumps_its_class_under_the_yaml_key():
    spec = parse("type: Custom\nclass: pkg.mod:Name\nparams: {a: 1}")
    assert spec.model_dump() == {"type": "Custom", "class": "pkg.mod:Name", "params": {"a": 1}}


MY_CALLBACKS = '''
import keras

class Good(keras.callbacks.Callback):
    def __init__(self, every=1):
        super().__init__()
        self.every = every

    def on_train_batch_end(self, batch, logs=None):
        pass

class OldStyle(keras.callbacks.Callback):
    def on_batch_begin(self, batch, logs=None):  # Keras calls it at every training batch
        pass

class ValidationOnly(keras.callbacks.Callback):
    def on_test_batch_end(self, batch, logs=None):
        pass

class NotACallback:
    pass
'''


@pytest.mark.parametrize("cls, params, loc, expected", [
    ("nowhere_module_xyz:Thing", {}, "class", ["no module named 'nowhere_module_xyz'"]),
    ("my_cbs:Goood", {}, "class", ["has no 'Goood'", "did you mean 'Good'"]),
    ("my_cbs:NotACallback", {}, "class", ["not a subclass of keras.callbacks.Callback"]),
    ("broken_cbs:X", {}, "class", ["importing 'broken_cbs' failed", "ZeroDivisionError"]),
    ("my_cbs:Good", {"evry": 2}, "params", ["unexpected keyword argument 'evry'",
                                            "Good takes (every=1)"]),
])
def test_custom_failures_are_config_errors(tmp_path, monkeypatch, cls, params, loc, expected):
    monkeypatch.setattr(sys, "path", list(sys.path))  # build() puts tmp_path on it
    (tmp_path / "my_cbs.py").write_text(MY_CALLBACKS)
    (tmp_path / "broken_cbs.py").write_text("x = 1 / 0\n")
    spec = ADAPTER.validate_python({"type": "Custom", "class": cls, "params": params})
    with pytest.raises(ConfigError) as info:
        build_one(spec, BuildContext(run_dir=tmp_path, config_dir=tmp_path))
    [problem] = info.value.problems
    assert problem.loc == (loc,)
    for part in expected:
        assert part in problem.message


# Only the hooks of training batches pin steps_per_execution to 1; validation batches
# run outside the training steps.
@pytest.mark.parametrize("name, expected", [("Good", True), ("OldStyle", True),
                                            ("ValidationOnly", False)])
def test_custom_batch_level_follows_the_class(tmp_path, monkeypatch, name, expected):
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "my_cbs2.py").write_text(MY_CALLBACKS)
    spec = ADAPTER.validate_python({"type": "Custom", "class": f"my_cbs2:{name}"})
    callback = build_one(spec, BuildContext(run_dir=tmp_path, config_dir=tmp_path))
    assert spec.batch_level(callback) is expected


# (snippet, text that must appear among the error locations and messages)
BAD = [
    ("type: ReduceLROnPlateau\nfactor: 1.0", ["factor", "strictly between 0 and 1", "1.0"]),
    ("type: ReduceLROnPlateau\nfactor: 0", ["factor", "strictly between 0 and 1"]),
    ("type: ReduceLROnPlateau\nmin_lr: -1e-3", ["min_lr", "greater than or equal to 0"]),
    ("type: ReduceLROnPlateau\npatiance: 3", ["patiance", "Extra inputs are not permitted"]),
    ("type: EarlyStopping\npatience: -1", ["patience", "greater than or equal to 0"]),
    ("type: EarlyStopping\npatience: true", ["patience", "valid integer"]),
    ("type: EarlyStopping\npatience: '5'", ["patience", "valid integer"]),
    ("type: EarlyStopping\npatience: 2.5", ["patience", "valid integer"]),
    ("type: EarlyStopping\nmin_delta: -0.1", ["min_delta", "greater than or equal to 0"]),
    ("type: EarlyStopping\nmode: maximum", ["mode", "'auto', 'min' or 'max'"]),
    ("type: EarlyStopping\nverbose: 2", ["verbose", "less than or equal to 1"]),
    ("type: EarlyStopping\nbaseline: .nan", ["baseline", "finite number"]),
    ("type: EarlyStopping\nstart_from_epoch: -2", ["start_from_epoch", "greater than or equal"]),
    ("type: EarlyStopping\nmonitor: ''", ["monitor", "at least 1 character"]),
    ("type: ModelCheckpoint\nmonitor: val_loss", ["filepath", "Field required"]),
    ("type: ModelCheckpoint\nfilepath: m.keras\nsave_freq: 0",
     ["save_freq", "'epoch' or a positive number of batches", "got 0"]),
    ("type: ModelCheckpoint\nfilepath: m.keras\nsave_freq: batch", ["save_freq", "'batch'"]),
    ("type: ModelCheckpoint\nfilepath: m.keras\nsave_weights_only: true",
     ["'m.keras' must end in '.weights.h5'", "save_weights_only"]),
    ("type: ModelCheckpoint\nfilepath: m.weights.h5",
     ["must end in '.keras'", "set save_weights_only: true"]),
    ("type: ModelCheckpoint\nfilepath: m.h5", ["legacy HDF5", "'.keras'"]),
    ("type: ModelCheckpoint\nfilepath: ../x.keras", ["filepath", "escapes the run directory"]),
    ("type: ModelCheckpoint\nfilepath: /tmp/x.keras", ["filepath", "is absolute"]),
    ("type: ModelCheckpoint\nfilepath: model.keras", ["filepath", "cbrun writes its own"]),
    ("type: ModelCheckpoint\nfilepath: state/x.keras", ["filepath", "cbrun writes its own"]),
    ("type: ModelCheckpoint\nfilepath: 'ep{epoch:03d.keras'", ["filepath", "not a valid template"]),
    ("type: ModelCheckpoint\nfilepath: 'ep{}.keras'", ["filepath", "an empty {}"]),
    ("type: ModelCheckpoint\nfilepath: 'ep{0}.keras'", ["filepath", "{0}"]),
    ("type: ModelCheckpoint\nfilepath: 'ep{val_loss:03d}.keras'",
     ["filepath", "cannot be formatted", "Unknown format code 'd'"]),
    ("type: ModelCheckpoint\nfilepath: 'b{batch}.keras'", ["{batch}", "save_freq is 'epoch'"]),
    ("type: ModelCheckpoint\nfilepath: 'b{val_loss}.keras'\nsave_freq: 5\nmonitor: loss",
     ["{val_loss}", "mid-epoch"]),
    ("type: ModelCheckpoint\nfilepath: m.keras\nsave_freq: 5\nsave_best_only: true",
     ["monitor 'val_loss'", "before validation"]),
    ("type: ModelCheckpoint\nfilepath: m.keras\ninitial_value_threshold: 0.3",
     ["initial_value_threshold", "save_best_only: true"]),
    ("type: CSVLogger\nseparator: ''", ["separator", "exactly one character"]),
    ("type: CSVLogger\nseparator: ', '", ["separator", "exactly one character"]),
    ("type: CSVLogger\nfilename: ../../log.csv", ["filename", "escapes the run directory"]),
    ("type: CSVLogger\nfilename: run.json", ["filename", "cbrun writes its own"]),
    ("type: CSVLogger\nfilename: tracking.log", ["filename", "cbrun writes its own"]),
    ("type: CSVLogger\nfilename: '.'", ["filename", "names a folder", "such as 'log.csv'"]),
    ("type: CSVLogger\nfilename: logs/", ["names a folder", "such as 'logs/log.csv'"]),
    ("type: CSVLogger\nfilename: logs/..", ["names a folder", "such as 'log.csv'"]),
    ("type: CSVLogger\nfilename: ../log.csv", ["escapes", "such as 'log.csv'"]),
    ("type: ModelCheckpoint\nfilepath: checkpoints/",
     ["names a folder", "such as 'checkpoints/best.keras'"]),
    ("type: ModelCheckpoint\nfilepath: ../m.keras", ["escapes", "'checkpoints/best.keras'"]),
    ("type: TensorBoard\nlog_dir: ../tb", ["escapes", "such as 'tensorboard'"]),
    ("type: TensorBoard\nprofile_batch: '5,2'", ["profile_batch", "0 < start <= stop", "'5,2'"]),
    ("type: TensorBoard\nprofile_batch: [0, 3]", ["profile_batch", "0 < start <= stop"]),
    ("type: TensorBoard\nprofile_batch: [1, 2, 3]", ["profile_batch", "[start, stop]"]),
    ("type: TensorBoard\nprofile_batch: -1", ["profile_batch", "got -1"]),
    ("type: TensorBoard\nprofile_batch: a,b", ["profile_batch", "'a,b'"]),
    ("type: TensorBoard\nupdate_freq: 0", ["update_freq", "'epoch', 'batch' or a positive"]),
    ("type: TensorBoard\nupdate_freq: step", ["update_freq", "'step'"]),
    ("type: TensorBoard\nhistogram_freq: -1", ["histogram_freq", "greater than or equal"]),
    ("type: TensorBoard\nlog_dir: /var/log/tb", ["log_dir", "is absolute"]),
    ("type: TensorBoard\nembeddings_metadata: meta.tsv", ["embeddings_freq"]),
    ("type: LearningRateScheduler", ["schedule", "Field required"]),
    ("type: LearningRateScheduler\nschedule: {kind: step, initial: 0.1, factor: 2, every: 1}",
     ["factor", "less than or equal to 1"]),
    ("type: RemoteMonitor\nroot: localhost:9000", ["root", "http:// or https:// URL"]),
    ("type: RemoteMonitor\nroot: ftp://example.org", ["root", "http:// or https:// URL"]),
    ("type: RemoteMonitor\npath: publish", ["path", "must start with '/'"]),
    ("type: SwapEMAWeights\nswap_on_epoch: 1", ["swap_on_epoch", "valid boolean"]),
    ("type: TerminateOnNaN\nfoo: 1", ["foo", "Extra inputs are not permitted"]),
    ("type: Custom\nclass: my_callbacks.LogTime", ["class", "'module:ClassName'"]),
    ("type: Custom\nclass: a:B\nparams: {not-an-identifier: 1}", ["params", "identifiers"]),
    ("type: BackupAndRestore\nbackup_dir: backup", ["cbrun resume runs/<id>",
                                                    "not the callbacks' state"]),
    ("type: ProgbarLogger", ["cbrun draws its own progress", "--quiet"]),
    ("type: LambdaCallback", ["at least one hook", "on_epoch_end"]),
    ("type: LambdaCallback\non_epoch_end: hooks.log", ["on_epoch_end", "'module:function'"]),
    ("type: LambdaCallback\non_epoch_end: h:f\nparams: {run_dir: x}",
     ["params", "cbrun passes 'run_dir'"]),
    ("type: PredictionSamples\nimage_shape: [8, 8, 2]", ["image_shape", "1, 3 or 4 channels"]),
    ("type: PredictionSamples\nsamples: 0", ["samples", "greater than or equal to 1"]),
    ("type: PredictionSamples\ndirectory: ../out", ["directory", "escapes the run directory"]),
    ("type: PredictionSamples\nsplit: train", ["split", "'validation' or 'test'"]),
    ("type: History", ["always on"]),
    ("type: BaseLogger", ["always on"]),
    ("type: EarlyStoping\npatience: 2", ["'EarlyStoping'", "'EarlyStopping'"]),
]


@pytest.mark.parametrize("snippet, expected", BAD,
                         ids=[f"{i}-{s.split(chr(10))[0][6:]}" for i, (s, _) in enumerate(BAD)])
def test_bad_values_are_refused_naming_the_field_and_the_rule(snippet, expected):
    with pytest.raises(ValidationError) as info:
        parse(snippet)
    text = "\n".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in info.value.errors())
    for part in expected:
        assert part in text


def test_yaml_exponent_floats_are_accepted():
    spec = parse("type: ReduceLROnPlateau\nmin_lr: 1e-6\nmin_delta: 5E-3")
    assert (spec.min_lr, spec.min_delta) == (1e-6, 5e-3)


def test_checkpoint_monitors_every_metric_in_its_template():
    template = ("filepath: 'c/{epoch:02d}-{val_accuracy:.2f}-{loss:.3f}-{val_accuracy:.4f}"
                ".keras'\nmonitor: val_loss")
    spec = parse("type: ModelCheckpoint\nsave_best_only: true\n" + template)
    assert spec.monitored() == [(("monitor",), "val_loss"), (("filepath",), "val_accuracy"),
                                (("filepath",), "loss")]
    # Without save_best_only Keras never reads `monitor`; only the template's names count.
    spec = parse("type: ModelCheckpoint\n" + template)
    assert spec.monitored() == [(("filepath",), "val_accuracy"), (("filepath",), "loss")]


@pytest.mark.parametrize("snippet, expected", [
    ("type: ModelCheckpoint\nfilepath: m.keras", False),
    ("type: ModelCheckpoint\nfilepath: m.keras\nsave_freq: 100\nmonitor: loss", True),
    ("type: TensorBoard", False),
    ("type: TensorBoard\nupdate_freq: batch", True),
    ("type: TensorBoard\nupdate_freq: 20", True),
    ("type: TensorBoard\nprofile_batch: 3", True),
    ("type: EarlyStopping", False),
    ("type: TerminateOnNaN", False),
])
def test_batch_level(snippet, expected):
    assert parse(snippet).batch_level() is expected


# Where cbrun's default differs from Keras's on purpose (Keras: no default, "logs").
CBRUN_DEFAULTS = {("CSVLogger", "filename"): "log.csv",
                  ("TensorBoard", "log_dir"): "tensorboard"}
# Custom and LambdaCallback take import paths where Keras takes objects; PredictionSamples
# is cbrun's own.
KERAS_SPECS = [cls for cls in BUILTIN if not issubclass(cls, UnsupportedSpec)
               and spec_name(cls) not in ("Custom", "LambdaCallback", "PredictionSamples")]


@pytest.mark.parametrize("spec_class", KERAS_SPECS, ids=spec_name)
def test_fields_are_keras_parameters_with_keras_defaults(spec_class):
    name = spec_name(spec_class)
    signature = inspect.signature(getattr(keras.callbacks, name).__init__)
    keras_params = {p.name: p.default for p in signature.parameters.values()
                    if p.name != "self" and p.kind is not p.VAR_KEYWORD}
    # cbrun's additions (ModelCheckpoint's keep_best) are declared as such, never Keras's.
    ours = getattr(spec_class, "cbrun_fields", ())
    assert not set(ours) & set(keras_params)
    fields = {k: f for k, f in spec_class.model_fields.items()
              if k != "type" and k not in ours}
    assert list(fields) == list(keras_params)
    for param, keras_default in keras_params.items():
        field = fields[param]
        if (name, param) in CBRUN_DEFAULTS:
            assert field.get_default() == CBRUN_DEFAULTS[(name, param)], param
        elif keras_default is inspect.Parameter.empty:
            assert field.is_required(), param
        else:
            assert field.get_default() == keras_default, param


@pytest.mark.parametrize("spec_class", BUILTIN, ids=spec_name)
def test_every_spec_documents_itself(spec_class):
    assert spec_class.summary and spec_class.__doc__
    if issubclass(spec_class, UnsupportedSpec):
        assert spec_class.reason
        return
    for name, field in spec_class.model_fields.items():
        if name != "type":
            assert field.description, name
            assert ("Defaults to" in field.description) != field.is_required(), name
            assert ("Required." in field.description) == field.is_required(), name
