"""What only a whole `cbrun` process does to itself, and what a caller's process keeps.

`cbrun train` imports TensorFlow with the garbage collector off and then freezes what the
import made (cbrun/train/tfimport.py): full collections stop walking ~300,000 objects that
are never garbage. Keras's import of matplotlib.pyplot waits until something uses it. A Python caller (cbrun.api, tests calling main(argv)) keeps its collector
as it was: freezing would keep its own garbage alive.
"""

from __future__ import annotations

import gc
import json

from conftest import cbrun_process, cli, tiny_config, write_config

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

        state = {"frozen": gc.get_freeze_count(), "enabled": gc.isenabled(),
                 "pyplot": "matplotlib.pyplot" in sys.modules}
        state["gallery"] = callable(plot_image_gallery.plt.subplots)  # imports it if need be
        with open(self.path, "w") as handle:
            json.dump(state, handle)
'''


def _config(tmp_path, seen):
    (tmp_path / "probe.py").write_text(PROBE)
    return write_config(tmp_path, tiny_config(fit={"epochs": 1}, callbacks=[
        {"type": "Custom", "class": "probe:Probe", "params": {"path": str(seen)}}]))


def test_the_cbrun_process_freezes_what_tensorflow_made_and_collects_the_rest(tmp_path):
    seen = tmp_path / "seen.json"
    proc = cbrun_process("train", _config(tmp_path, seen), "--runs-dir", tmp_path / "runs",
                         "-q")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    state = json.loads(seen.read_text())
    assert state["enabled"] is True
    assert state["frozen"] > 100_000, state
    # Keras's import no longer pulls in pyplot (0.3 s); its image gallery still finds it.
    assert state["pyplot"] is False and state["gallery"] is True


def test_a_caller_keeps_its_collector_as_it_was(tmp_path):
    seen = tmp_path / "seen.json"
    before = gc.get_freeze_count()
    assert cli("train", _config(tmp_path, seen), "--runs-dir", tmp_path / "runs", "-q") == 0
    state = json.loads(seen.read_text())
    assert state["frozen"] == before and state["enabled"] is True and state["gallery"] is True
    assert gc.isenabled() and gc.get_freeze_count() == before
