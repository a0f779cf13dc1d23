"""The user's modules a config names (callbacks, factories, loaders) are imported from the
config's folder without leaving the Python path changed, and each config gets the modules
of its own folder even when another folder has one of the same name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import tiny_config, write_config

from cbrun.errors import ConfigError

# `my_callbacks` imports `helpers`, a second module of the same folder: both names are in
# both folders, so a module kept from the first folder would say so.
CALLBACKS = '''
import keras
from helpers import WHO

class Mark(keras.callbacks.Callback):
    def __init__(self, out):
        super().__init__()
        self.out = out

    def on_train_end(self, logs=None):
        with open(self.out, "a") as out:
            out.write(WHO + " " + __file__ + "\\n")
'''


def folder_with_config(root: Path, who: str) -> Path:
    folder = root / who
    folder.mkdir()
    (folder / "my_callbacks.py").write_text(CALLBACKS)
    (folder / "helpers.py").write_text(f"WHO = {who!r}\n")
    return write_config(folder, tiny_config(fit={"epochs": 1}, callbacks=[{
        "type": "Custom", "class": "my_callbacks:Mark",
        "params": {"out": str(root / "said.txt")}}]))


def test_each_config_gets_its_own_folders_modules_and_the_path_stays_as_it_was(tmp_path):
    import cbrun

    configs = {who: folder_with_config(tmp_path, who) for who in ("first", "second")}
    order = ("first", "second", "first")
    for who in order:
        path = list(sys.path)
        cbrun.train(configs[who], runs_dir=tmp_path / "runs", quiet=True)
        assert sys.path == path
    said = [line.split(" ", 1) for line in (tmp_path / "said.txt").read_text().splitlines()]
    assert [who for who, _ in said] == list(order)
    assert [Path(file).parent for _, file in said] == [configs[who].parent for who in order]


def test_a_failed_import_leaves_the_path_as_it_was(tmp_path):
    from cbrun.callbacks.imports import import_object

    (tmp_path / "broken_module.py").write_text("raise RuntimeError('not today')\n")
    path = list(sys.path)
    for target, message in (("no_such_module:thing", "no module named 'no_such_module'"),
                            ("broken_module:thing", "RuntimeError: not today")):
        with pytest.raises(ConfigError, match=message):
            import_object(tmp_path, target, ("class",), "Callback classes", callable)
        assert sys.path == path
