"""`cbrun export`: each format exported from a real run and verified with its own runtime;
an artifact changed after export fails the verification, naming the output and the
difference; the export extra missing, unsafe outputs and `--help` stay before TensorFlow."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, cli, cli_output, only_run, tiny_config, write_config
from test_models import TWO_IO, two_io_data

from tests.helpers.light import run_cbrun

FORMATS = ["saved_model", "litert", "onnx"]
ARTIFACT = {"saved_model": "export/saved_model", "litert": "export/model.tflite",
            "onnx": "export/model.onnx"}
DIFF = re.compile(r"^  (\S+): largest difference (\S+)", re.MULTILINE)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export_digits")
    path = write_config(folder, tiny_config(fit={"epochs": 3}, callbacks=[
        {"type": "ModelCheckpoint", "filepath": "checkpoints/ep{epoch}.keras",
         "monitor": "val_loss", "save_best_only": True}]))
    assert cli("train", path, "--runs-dir", folder / "runs", "--quiet") == 0
    return only_run(folder / "runs")


@pytest.fixture(scope="module")
def two_io_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export_two_io")
    two_io_data(folder)
    (folder / "run.yaml").write_text(TWO_IO)
    assert cli("train", folder / "run.yaml", "--runs-dir", folder / "runs", "--quiet") == 0
    return only_run(folder / "runs")


@pytest.fixture(scope="module")
def table_run(tmp_path_factory) -> Path:
    """A CSV run with a string column (a saved vocabulary) and an adapted Normalization."""
    from datafiles import table_config, table_rows, write_csv

    folder = tmp_path_factory.mktemp("export_table")
    write_csv(folder / "animals.csv", table_rows())
    path = write_config(folder, table_config("table", {
        "source": "csv", "path": "animals.csv", "label": "species",
        "validation_split": 0.2, "batch_size": 16}))
    assert cli("train", path, "--runs-dir", folder / "runs", "--quiet") == 0
    return only_run(folder / "runs")


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    """Reviews as raw strings through an adapted TextVectorization."""
    from datafiles import review_rows
    from test_text_data import train_reviews_npz

    return train_reviews_npz(tmp_path_factory.mktemp("export_text"), review_rows(80))


def differences(out: str) -> dict[str, float]:
    return {name: float(value) for name, value in DIFF.findall(out)}


def files_outside(root: Path, run_dir: Path) -> set[Path]:
    return {p for p in root.rglob("*") if run_dir not in p.parents and p != run_dir}


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_is_exported_inside_the_run_verified_and_fails_once_changed(
        digits_run, capsys, fmt):
    """Exported and verified; then the artifact is changed after the export (one export of
    each format serves both): --verify-only fails, naming the output and the difference."""
    before = files_outside(digits_run.parents[1], digits_run)
    result = cli_output(capsys, "export", digits_run, "--format", fmt, "--force")
    assert result.code == 0, result.err
    artifact = digits_run / ARTIFACT[fmt]
    assert f"exported {fmt} to {artifact}" in result.out
    assert "verified on 32 validation samples" in result.out
    diffs = differences(result.out)
    assert list(diffs) == ["output_0"] and diffs["output_0"] <= 1e-4, result.out
    assert result.out.rstrip().endswith("ok: every output within 0.0001")
    assert artifact.exists() and not list(artifact.parent.glob(".*partial*"))
    assert files_outside(digits_run.parents[1], digits_run) == before

    if fmt == "saved_model":
        perturb_saved_model(artifact)
    elif fmt == "litert":
        perturb_tflite(artifact, digits_run / "model.keras")
    else:
        perturb_onnx(artifact)
    result = cli_output(capsys, "export", digits_run, "-f", fmt, "--verify-only")
    assert result.code == 1
    diff = differences(result.out)["output_0"]
    assert diff > 1e-2, result.out
    assert "OVER the tolerance 0.0001" in result.out
    assert re.search(rf"error: {re.escape(str(artifact))} does not match the model: output "
                     rf"output_0 by {diff:.3g} \(tolerance 0.0001\)", result.err), result.err
    # A tolerance that the change fits in lets it pass: the number printed is the measure.
    loose = cli_output(capsys, "export", digits_run, "-f", fmt, "--verify-only",
                       "--tolerance", str(diff * 2))
    assert loose.code == 0, loose.err


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_graph_with_two_inputs_and_two_outputs_is_verified_per_output(two_io_run, capsys,
                                                                         fmt):
    result = cli_output(capsys, "export", two_io_run, "-f", fmt, "--force")
    assert result.code == 0, result.err
    diffs = differences(result.out)
    assert set(diffs) == {"digit", "size"} and max(diffs.values()) <= 1e-4, result.out


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_table_run_with_an_adapted_normalization_is_verified(table_run, capsys, fmt):
    # For onnx this needs cbrun's fix: tf2onnx alone makes the Normalization's mean and
    # variance two extra inputs of the artifact, their values lost.
    result = cli_output(capsys, "export", table_run, "-f", fmt)
    assert result.code == 0, result.err
    assert "verified on 30 validation samples" in result.out
    assert differences(result.out)["output_0"] <= 1e-4
    if fmt == "onnx":
        import onnx

        model = onnx.load(str(table_run / ARTIFACT[fmt]))
        assert [i.name for i in model.graph.input] == ["input_layer"]


def test_a_text_model_is_verified_where_its_runtime_can_run_it(text_run, capsys):
    result = cli_output(capsys, "export", text_run, "-f", "saved_model")
    assert result.code == 0, result.err
    assert "verified on 20 validation samples" in result.out
    assert differences(result.out)["output_0"] <= 1e-4

    # TextVectorization lowercases with a TensorFlow op that TFLite has no kernel for: the
    # converter keeps it for the Flex delegate, which no Python interpreter here links.
    result = cli_output(capsys, "export", text_run, "-f", "litert")
    assert result.code == 1
    assert "it needs TensorFlow ops through the Flex delegate (FlexStringLower)" in result.err
    assert "the export is not verified" in result.err

    # tf2onnx leaves its punctuation-stripping regex op as it is; ONNX has no such operator.
    result = cli_output(capsys, "export", text_run, "-f", "onnx")
    assert result.code == 1
    assert result.err == (f"error: ONNX Runtime cannot load {text_run}/export/model.onnx: "
                          "tf2onnx left TensorFlow's StaticRegexReplace in the graph, and ONNX "
                          "has no such operator: this model cannot be exported to ONNX\n")


def test_a_mixed_precision_run_is_exported_in_float32_and_verified(tmp_path, capsys):
    config = tiny_config(fit={"epochs": 1})
    config["compile"]["mixed_precision"] = "mixed_float16"
    import keras

    try:
        assert cli("train", write_config(tmp_path, config), "--runs-dir", tmp_path / "runs",
                   "-q") == 0
    finally:
        # The session leaves its policy global; the other tests of this process load
        # float32 models.
        keras.config.set_dtype_policy("float32")
    run = only_run(tmp_path / "runs")
    for fmt in ("litert", "onnx"):
        # As trained, the graph computes in float16: the TFLite converter leaves those ops
        # to the Flex delegate, and Keras's ONNX export wants float32.
        result = cli_output(capsys, "export", run, "-f", fmt)
        assert result.code == 0, result.err
        drift = float(re.search(r"the run computes in mixed_float16: exported in float32 "
                                r"with the same weights \(largest difference from the "
                                r"mixed_float16 model on these samples (\S+)\)",
                                result.out).group(1))
        assert 0 < drift < 1e-2
        assert differences(result.out)["output_0"] <= 1e-5


def test_an_image_folder_run_is_verified_on_its_decoded_images(tmp_path, capsys):
    from datafiles import image_config, write_images

    write_images(tmp_path / "shapes")
    config = image_config("shapes", {"path": "shapes", "validation_split": 0.25}, epochs=1)
    assert cli("train", write_config(tmp_path, config), "--runs-dir", tmp_path / "runs",
               "-q") == 0
    result = cli_output(capsys, "export", only_run(tmp_path / "runs"), "-f", "litert")
    assert result.code == 0, result.err
    assert "verified on 6 validation samples" in result.out
    assert differences(result.out)["output_0"] <= 1e-4


def perturb_saved_model(folder: Path) -> None:
    """Scale every matrix in the SavedModel's variables by 1.5, rewriting the bundle."""
    import tensorflow as tf

    prefix = str(folder / "variables" / "variables")
    reader = tf.train.load_checkpoint(prefix)
    names = sorted(reader.get_variable_to_shape_map())
    values = [reader.get_tensor(name) for name in names]
    values = [v * 1.5 if isinstance(v, np.ndarray) and v.ndim == 2 else v for v in values]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(v) for v in values])


def perturb_tflite(path: Path, model_file: Path) -> None:
    """Find a weight of the Keras model among the .tflite file's buffers and change it."""
    import keras

    data = bytearray(path.read_bytes())
    for weight in keras.saving.load_model(model_file).weights:
        value = np.asarray(weight, dtype="<f4")
        for layout in (value, value.T):
            raw = np.ascontiguousarray(layout).tobytes()
            at = data.find(raw)
            if at >= 0:
                data[at:at + len(raw)] = (layout * 1.5 + 0.5).astype("<f4").tobytes()
                path.write_bytes(bytes(data))
                return
    raise AssertionError("no weight of the model found in the .tflite buffers")


def perturb_onnx(path: Path) -> None:
    """Scale the largest initializer (a Dense kernel) through the onnx package."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    largest = max(model.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)
    changed = numpy_helper.to_array(largest) * 1.5
    largest.CopyFrom(numpy_helper.from_array(changed.astype(np.float32), largest.name))
    onnx.save(model, str(path))


def test_the_best_checkpoint_is_exported_and_verified(digits_run, tmp_path, capsys):
    import keras
    import onnxruntime

    target = tmp_path / "best.onnx"
    result = cli_output(capsys, "export", digits_run, "-f", "onnx", "--checkpoint", "best",
                        "-o", target)
    assert result.code == 0, result.err
    epoch = int(re.search(r"model: best: epoch (\d) \(val_loss ", result.out).group(1))
    # The artifact computes what that epoch's checkpoint file computes.
    best = keras.saving.load_model(digits_run / "checkpoints" / f"ep{epoch}.keras")
    x = np.random.default_rng(1).random((5, 64), dtype=np.float32) * 16
    session = onnxruntime.InferenceSession(str(target))
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert np.abs(got - np.asarray(best(x, training=False))).max() < 1e-5


def test_an_unsafe_output_is_refused_before_anything_is_written(digits_run, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "link.onnx"
    link.symlink_to(elsewhere / "model.onnx")
    result = cli_output(capsys, "export", digits_run, "-f", "onnx", "-o", link)
    assert result.code == 2 and "is a symbolic link" in result.err
    assert not (elsewhere / "model.onnx").exists()

    kept = tmp_path / "kept.onnx"
    kept.write_text("mine")
    result = cli_output(capsys, "export", digits_run, "-f", "onnx", "-o", kept)
    assert result.code == 2 and "exists; add --force to replace it" in result.err
    assert kept.read_text() == "mine"

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("keep me")
    result = cli_output(capsys, "export", digits_run, "-f", "saved_model", "-o", folder,
                        "--force")
    assert result.code == 2 and "no saved_model.pb" in result.err
    assert (folder / "todo.txt").read_text() == "keep me"

    result = cli_output(capsys, "export", digits_run, "-f", "litert", "-o", tmp_path / "m.bin")
    assert result.code == 2 and "ending in .tflite" in result.err


def test_o_with_force_replaces_an_earlier_export(digits_run, tmp_path, capsys):
    target = tmp_path / "out" / "digits.tflite"
    # An earlier export's file, made stale: its bytes were never read, only its being there
    # (an export to write first cost a conversion).
    target.parent.mkdir()
    target.write_bytes(b"stale")
    result = cli_output(capsys, "export", digits_run, "-f", "litert", "-o", target, "--force")
    assert result.code == 0, result.err
    assert target.stat().st_size > 1000 and sorted(os.listdir(target.parent)) == [target.name]


def test_a_link_inside_the_run_stops_the_export(digits_run, tmp_path, capsys):
    import shutil

    run = tmp_path / digits_run.name
    shutil.copytree(digits_run, run, ignore=shutil.ignore_patterns("export"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / "export").symlink_to(outside)
    result = cli_output(capsys, "export", run, "-f", "onnx")
    assert result.code == 1 and f"{run / 'export'} is a symbolic link" in result.err
    assert list(outside.iterdir()) == []


def test_not_a_run_directory(tmp_path, capsys):
    result = cli_output(capsys, "export", tmp_path, "-f", "onnx")
    assert result.code == 2
    assert result.err == f"error: {tmp_path} is not a run directory (no run.json); give a " \
                         f"folder that `cbrun train` created, e.g. runs/<id>\n"


# Makes one module unimportable, as if never installed: the import system itself says so.
HIDE = textwrap.dedent("""\
    import sys

    class _NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == {name!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, _NotInstalled())
    """)


@pytest.mark.parametrize(("fmt", "hidden"), [("onnx", "tf2onnx"), ("litert", "ai_edge_litert")])
def test_a_missing_export_extra_is_one_line_naming_the_extra(digits_run, tmp_path, fmt,
                                                             hidden):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(HIDE.format(name=hidden))
    result = run_cbrun(["export", digits_run, "-f", fmt], whole=True, path=(shim,))
    (export,) = result.commands
    assert export.code == 2, export.err
    line = (f"error: --format {fmt} needs "
            f"{'onnx, onnxruntime, tf2onnx' if fmt == 'onnx' else 'ai_edge_litert'}"
            f" from the export extra ({hidden} not installed): pip install 'cbrun[export]'")
    assert export.err.splitlines() == [line] and not result.err, result.err
    assert result.heavy == []
    assert line in (REPO / "docs" / "export.md").read_text() or fmt != "onnx"


def test_export_help_does_not_import_tensorflow():
    result = run_cbrun(["export", "--help"])
    assert "--format [saved_model|litert|onnx]" in result.commands[0].out
    assert result.heavy == []


def test_the_difference_is_taken_both_ways():
    """An artifact whose outputs are 0.3 below the model's differs by 0.3, as one 0.3
    above it does (issue 22: the difference without its absolute value passed any
    tolerance)."""
    from cbrun.engine.exportcheck import compare

    model = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    for shift in (-0.3, 0.3):
        [(name, diff)] = compare(model, [("output_0", model + shift)], ["output_0"])
        assert name == "output_0" and abs(diff - 0.3) < 1e-6, (shift, diff)
    pairs = compare({"a": model, "b": model}, [("a", model), ("b", model - 0.3)], ["a", "b"])
    assert [(n, round(d, 6)) for n, d in pairs] == [("a", 0.0), ("b", 0.3)]
