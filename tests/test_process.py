"""What only a whole `cbrun` process does to itself, and what a caller's process keeps.

`cbrun train` imports TensorFlow with the garbage collector off and freezes what the import
made (cbrun/engine/tfimport.py): full collections stop walking ~300,000 objects that are never
garbage. The collector stays off until the first epoch has built what the run keeps. Keras's import of matplotlib.pyplot waits until something uses it. A Python caller (cbrun.api, tests calling main(argv)) keeps its collector
as it was: freezing would keep its own garbage alive.
"""

from __future__ import annotations

import gc
import json

from conftest import HANG_S, cbrun_process, cli, tiny_config, write_config

PROBE = '''
import gc, json
import keras


class Probe(keras.callbacks.Callback):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_train_begin(self, logs=None):
        import sys

        from keras.src.visualization import plot_image_gallery

        self.state = {"frozen": gc.get_freeze_count(), "enabled": gc.isenabled(),
                      "pyplot": "matplotlib.pyplot" in sys.modules}
        self.state["gallery"] = callable(plot_image_gallery.plt.subplots)  # imports it

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:  # the first epoch is over
            self.state["later"] = {"frozen": gc.get_freeze_count(), "enabled": gc.isenabled()}
            with open(self.path, "w") as handle:
                json.dump(self.state, handle)
'''


def _config(tmp_path, seen):
    (tmp_path / "probe.py").write_text(PROBE)
    return write_config(tmp_path, tiny_config(fit={"epochs": 2}, callbacks=[
        {"type": "Custom", "class": "probe:Probe", "params": {"path": str(seen)}}]))


def test_the_cbrun_process_freezes_what_tensorflow_made_and_collects_the_rest(tmp_path):
    seen = tmp_path / "seen.json"
    # The hold ends at the first epoch's end, or after 60 s, which a loaded machine can take
    # to get there: the test lifts that limit.
    proc = cbrun_process("train", _config(tmp_path, seen), "--runs-dir", tmp_path / "runs",
                         "-q", env={"CBRUN_GC_HOLD_AT_MOST": str(HANG_S)})
    _, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode == 0, err
    state = json.loads(seen.read_text())
    # Off from TensorFlow's import through the first epoch, its objects frozen; then on, with
    # what the first epoch built frozen too.
    assert state["enabled"] is False and state["frozen"] > 100_000, state
    assert state["later"]["enabled"] is True
    assert state["later"]["frozen"] > state["frozen"], state
    # Keras's import no longer pulls in pyplot (0.3 s); its image gallery still finds it.
    assert state["pyplot"] is False and state["gallery"] is True


def test_a_caller_keeps_its_collector_as_it_was(tmp_path):
    seen = tmp_path / "seen.json"
    before = gc.get_freeze_count()
    assert cli("train", _config(tmp_path, seen), "--runs-dir", tmp_path / "runs", "-q") == 0
    state = json.loads(seen.read_text())
    assert state["frozen"] == before and state["enabled"] is True and state["gallery"] is True
    assert state["later"] == {"frozen": before, "enabled": True}
    assert gc.isenabled() and gc.get_freeze_count() == before
