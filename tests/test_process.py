"""What only a whole `cbrun` process does to itself, and what a caller's process keeps.

`cbrun train` imports TensorFlow with the garbage collector off and freezes what the import
made (cbrun/engine/tfimport.py): full collections stop walking ~300,000 objects that are never
garbage. The collector stays off until the first epoch has built what the run keeps. Keras's
import of matplotlib.pyplot, and TFLite's of JAX, wait until something uses them. A Python caller (cbrun.api, tests
calling main(argv)) keeps its collector as it was: freezing would keep its own garbage alive.

What the tests look at is what a user would notice, not how many objects were frozen (that
is only speed): when the collector runs, and whether a caller's garbage is still collected.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import weakref

from conftest import HANG_S, cbrun_process, cli, tiny_config, write_config

JAX_INSTALLED = importlib.util.find_spec("jax") is not None

PROBE = '''
import gc, json, sys
import keras


class Probe(keras.callbacks.Callback):
    """Whether the garbage collector runs at each point of a two-epoch run, and whether
    the run imported pyplot."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.seen = {}

    def on_train_begin(self, logs=None):
        self.seen["train_begin"] = gc.isenabled()

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:  # this callback comes before cbrun's own, which end the hold
            self.seen["first_epoch_end"] = gc.isenabled()

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            self.seen["second_epoch"] = gc.isenabled()

    def on_train_end(self, logs=None):
        from keras.src.visualization import plot_image_gallery

        self.seen["pyplot"] = "matplotlib.pyplot" in sys.modules
        self.seen["gallery"] = callable(plot_image_gallery.plt.subplots)  # imports it
        from tensorflow.lite.python import lite

        self.seen["jax"] = "jax" in sys.modules
        # TFLite's converter from JAX functions still finds JAX (None: "not installed").
        self.seen["tflite_jax"] = lite._jit is not None
        with open(self.path, "w") as handle:
            json.dump(self.seen, handle)
'''


def _config(tmp_path, seen):
    (tmp_path / "probe.py").write_text(PROBE)
    return write_config(tmp_path, tiny_config(fit={"epochs": 2}, callbacks=[
        {"type": "Custom", "class": "probe:Probe", "params": {"path": str(seen)}}]))


def test_the_cbrun_process_holds_the_collector_off_through_the_first_epoch(tmp_path):
    seen = tmp_path / "seen.json"
    # The hold ends at the first epoch's end, or after 60 s, which a loaded machine can take
    # to get there: the test lifts that limit.
    proc = cbrun_process("train", _config(tmp_path, seen), "--runs-dir", tmp_path / "runs",
                         "-q", env={"CBRUN_GC_HOLD_AT_MOST": str(HANG_S)})
    _, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 0, err
    # Off from TensorFlow's import through the first epoch; on for the rest of the run.
    assert json.loads(seen.read_text()) == {
        "train_begin": False, "first_epoch_end": False, "second_epoch": True,
        # The whole run without pyplot (0.3 s of Keras's import); the gallery still finds it.
        "pyplot": False, "gallery": True,
        # Nor JAX (a quarter of TensorFlow's import where it is installed), which TFLite
        # imports for its converter from JAX functions: it is imported when that is used.
        "jax": False, "tflite_jax": JAX_INSTALLED}


def test_a_caller_keeps_its_collector_as_it_was(tmp_path):
    """A notebook's process: the collector runs all along, and what the caller held during
    the run is collected once it lets go (frozen, it would have stayed for good)."""
    seen = tmp_path / "seen.json"
    held = [Garbage()]
    held.append(held)  # a cycle: only the collector can free it
    watch = weakref.ref(held[0])
    assert cli("train", _config(tmp_path, seen), "--runs-dir", tmp_path / "runs", "-q") == 0
    state = json.loads(seen.read_text())
    assert state["train_begin"] and state["first_epoch_end"] and state["second_epoch"], state
    assert state["gallery"] is True and gc.isenabled()
    assert state["tflite_jax"] is JAX_INSTALLED
    del held
    gc.collect()
    assert watch() is None, "the caller's objects were frozen"


class Garbage:
    """Something a weak reference can follow."""
