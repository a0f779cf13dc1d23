"""`cbrun export --quantize int8|float16`: LiteRT post-training quantization, judged by the
validation metric against the Keras model (accuracy points, MAE percent), and an export
whose stderr holds none of TensorFlow's C++ lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, cli, cli_output, only_run, write_config
from test_export import table_run, two_io_run  # noqa: F401 - module fixtures shared here

from tests.helpers.light import run_cbrun

SCORE = re.compile(r"^  (\S+): (accuracy|MAE) (\S+) \(Keras (\S+), ([-+][^ %]+)(?: points|% MAE)\);"
                   r" largest output difference (\S+)", re.MULTILINE)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """configs/digits.yaml, the demo (an MLP of 128 units), for 10 epochs."""
    import yaml

    folder = tmp_path_factory.mktemp("quantize_digits")
    config = yaml.safe_load((REPO / "configs" / "digits.yaml").read_text())
    config["fit"]["epochs"] = 10
    config["callbacks"] = []  # TensorBoard's histograms and checkpoints: nothing to test here
    path = write_config(folder, config)
    assert cli("train", path, "--runs-dir", folder / "runs", "--quiet") == 0
    return only_run(folder / "runs")


def scores(out: str) -> dict[str, tuple]:
    return {m[0]: (m[1], float(m[2]), float(m[3]), float(m[4]), float(m[5]))
            for m in SCORE.findall(out)}


def litert_accuracy(path: Path, run_dir: Path) -> float:
    """The .tflite file's accuracy on the run's validation split, through the interpreter
    alone (not cbrun's scoring)."""
    from ai_edge_litert.interpreter import Interpreter

    from cbrun.engine.sources import data_for_run
    from cbrun.run.checkpoints import open_run

    splits, _ = data_for_run(open_run(run_dir))
    x, y = splits.validation.x.astype(np.float32), splits.validation.y
    runner = Interpreter(model_path=str(path)).get_signature_runner()
    (name,) = runner.get_input_details()
    (probabilities,) = runner(**{name: x}).values()
    return float(np.mean(np.argmax(probabilities, axis=1) == y))


def test_int8_keeps_the_digits_accuracy_within_a_point_and_is_three_times_smaller(
        demo_run, capsys):
    float_result = cli_output(capsys, "export", demo_run, "-f", "litert")
    assert float_result.code == 0, float_result.err
    result = cli_output(capsys, "export", demo_run, "-f", "litert", "--quantize", "int8")
    assert result.code == 0, result.err
    int8 = demo_run / "export" / "model-int8.tflite"
    assert (f"exported litert int8 to {int8}" in result.out
            and "calibrated on 200 training samples" in result.out), result.out
    assert "verified on 360 validation samples with the LiteRT interpreter (int8)" in result.out
    metric, value, keras_value, points, diff = scores(result.out)["output_0"]
    assert metric == "accuracy" and abs(points - (value - keras_value) * 100) < 0.02
    # What cbrun says is what the interpreter gives, within a point of the float model.
    assert abs(litert_accuracy(int8, demo_run) - value) < 1e-4
    assert abs(litert_accuracy(demo_run / "export" / "model.tflite", demo_run)
               - keras_value) < 1e-4
    assert value >= keras_value - 0.01 and keras_value >= 0.9
    assert 0 < diff < 0.1  # int8 computes other numbers; shown, not judged
    ratio = (demo_run / "export" / "model.tflite").stat().st_size / int8.stat().st_size
    assert ratio >= 3, ratio
    assert result.out.rstrip().endswith(
        "ok: every output within 1 accuracy point of the Keras model")


def test_float16_halves_the_file_and_keeps_the_accuracy(demo_run, tmp_path, capsys):
    f32, f16 = tmp_path / "f32.tflite", tmp_path / "f16.tflite"
    assert cli_output(capsys, "export", demo_run, "-f", "litert", "-o", f32).code == 0
    result = cli_output(capsys, "export", demo_run, "-f", "litert", "--quantize", "float16",
                        "-o", f16)
    assert result.code == 0, result.err
    assert "calibrated" not in result.out
    _, value, keras_value, _, diff = scores(result.out)["output_0"]
    assert abs(value - keras_value) <= 1 / 360 and diff < 1e-2
    assert 1.7 < f32.stat().st_size / f16.stat().st_size < 2.1


def scramble_int8_weights(path: Path) -> None:
    """Shuffle the int8 values of the largest weight matrix in the .tflite file."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    tensors = model.subgraphs[0].tensors
    buffer = max((model.buffers[t.buffer] for t in tensors if t.type == 9),  # INT8
                 key=lambda b: 0 if b.data is None else len(b.data))
    buffer.data = np.random.default_rng(0).permutation(np.asarray(buffer.data))
    flatbuffer_utils.write_model(model, str(path))


def test_an_int8_model_that_lost_its_accuracy_fails_by_the_metric(demo_run, tmp_path, capsys):
    target = tmp_path / "int8.tflite"
    assert cli_output(capsys, "export", demo_run, "-f", "litert", "--quantize", "int8",
                      "-o", target).code == 0
    scramble_int8_weights(target)
    result = cli_output(capsys, "export", demo_run, "-f", "litert", "--quantize", "int8",
                        "-o", target, "--verify-only")
    assert result.code == 1
    points = scores(result.out)["output_0"][3]
    assert points < -10 and "OVER the allowed loss" in result.out
    assert re.fullmatch(
        rf"error: {re.escape(str(target))} loses too much to int8 quantization: output "
        rf"output_0 {points:+.2f} points \(allowed: 1 accuracy point; --accuracy-drop, "
        rf"--mae-rise; --quantize float16 keeps more precision\); the artifact is left there "
        rf"for inspection, do not ship it\n", result.err), result.err
    # The bound is the user's: a loss it allows passes.
    loose = cli_output(capsys, "export", demo_run, "-f", "litert", "--quantize", "int8",
                       "-o", target, "--verify-only", "--accuracy-drop", str(-points + 1))
    assert loose.code == 0, loose.err


def test_two_inputs_and_a_classifier_and_a_regression_output_are_scored_each(two_io_run,  # noqa: F811
                                                                             capsys):
    result = cli_output(capsys, "export", two_io_run, "-f", "litert", "--quantize", "int8",
                        "--calibration-samples", "50")
    assert result.code == 0, result.err
    assert "calibrated on 50 training samples" in result.out
    found = scores(result.out)
    assert set(found) == {"digit", "size"}, result.out
    assert found["digit"][0] == "accuracy" and found["size"][0] == "MAE"
    assert result.out.rstrip().endswith(
        "ok: every output within 1 accuracy point (one sample of 24: 4.17 points) and 5% of "
        "the MAE of the Keras model")


def test_int8_that_costs_a_table_model_its_accuracy_is_refused_and_float16_passes(
        table_run, capsys):  # noqa: F811
    """Raw table columns (heights near 1000 mm, weights near 8000 g) share one input tensor,
    which int8 maps to 256 steps for them all: the float model's 90% drops by five of the
    30 validation rows. float16 keeps them; one row of 30 that rounding may tip over is
    3.3 points, within what the bound allows on so small a split."""
    result = cli_output(capsys, "export", table_run, "-f", "litert", "--quantize", "int8")
    assert result.code == 1
    points = scores(result.out)["output_0"][3]
    assert points < -100 / 30 - 0.01, result.out  # more than one row
    assert "(allowed: 1 accuracy point (one sample of 30: 3.33 points); --accuracy-drop, " \
           "--mae-rise; --quantize float16 keeps more precision)" in result.err
    assert (table_run / "export" / "model-int8.tflite").exists()  # left for inspection

    result = cli_output(capsys, "export", table_run, "-f", "litert", "--quantize", "float16")
    assert result.code == 0, result.err
    assert "verified on 30 validation samples" in result.out
    assert scores(result.out)["output_0"][3] >= -100 / 30 - 0.01
    assert result.out.rstrip().endswith("ok: every output within 1 accuracy point (one sample "
                                        "of 30: 3.33 points) of the Keras model")


def test_quantize_options_that_mean_nothing_are_refused_before_tensorflow(demo_run):
    result = run_cbrun(
        ["export", demo_run, "-f", "onnx", "--quantize", "int8"],
        ["export", demo_run, "-f", "saved_model", "--quantize", "float16"],
        ["export", demo_run, "-f", "litert", "--accuracy-drop", "2"],
        ["export", demo_run, "-f", "litert", "--quantize", "int8", "--tolerance", "0.1"],
        ["export", demo_run, "-f", "litert", "--quantize", "float16",
         "--calibration-samples", "10"],
        ["export", demo_run, "-f", "litert", "--quantize", "int4"])
    assert result.codes == [2] * 6 and result.heavy == []
    errors = [c.err.strip() for c in result.commands]
    assert errors[0] == ("error: --quantize int8 is LiteRT's post-training quantization; "
                         "--format onnx has none: use --format litert")
    assert "--format saved_model has none" in errors[1]
    assert errors[2] == ("error: --accuracy-drop applies to --quantize int8|float16 exports; "
                         "a float export is checked output by output with --tolerance")
    assert errors[3].startswith("error: --tolerance bounds a float export's outputs")
    assert "float16 quantization needs no calibration" in errors[4]
    assert "'int4' is not one of 'int8', 'float16'" in errors[5]


@pytest.mark.parametrize("args", [["-f", "litert"], ["-f", "litert", "--quantize", "int8"],
                                  ["-f", "onnx"], ["-f", "saved_model"]],
                         ids=["litert", "int8", "onnx", "saved_model"])
def test_an_export_prints_no_tensorflow_log_lines(demo_run, tmp_path, args):
    """As a user runs it: a fresh process without TF_CPP_MIN_LOG_LEVEL set. TensorFlow's
    start-up (CUDA probing: `failed call to cuInit` on a machine without a GPU), the
    converter's absl lines and LiteRT's XNNPACK notice are not the user's business."""
    suffix = {"onnx": ".onnx", "saved_model": ""}.get(args[1], ".tflite")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-m", "cbrun", "export", str(demo_run), *args,
                           "-o", str(tmp_path / f"out{suffix}")],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().splitlines()[-1].startswith("ok: every output within")
    assert done.stderr == ""


def test_a_float16_export_that_fails_on_weights_it_cannot_hold_says_so(
        tmp_path, capsys, monkeypatch):
    """A regression in large units (prices near 150,000) gives its output back in those
    units inside the model, with weights beyond float16's 65,504: the failed float16
    export names that as the likely reason."""
    from datafiles import write_csv

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(4)
    rows = [{"size": round(s, 1), "price": round(150_000 + 900 * (s - 100) + n, 0)}
            for s, n in zip(rng.uniform(40, 160, 300), rng.normal(0, 5000, 300), strict=True)]
    write_csv(tmp_path / "houses.csv", rows)
    assert cli("init", tmp_path / "houses.csv") == 0
    assert cli("train", tmp_path / "houses.yaml", "--runs-dir", tmp_path / "runs", "-q",
               "--set", "fit.epochs=3") == 0
    run = only_run(tmp_path / "runs")
    result = cli_output(capsys, "export", run, "-f", "litert", "--quantize", "float16")
    assert result.code == 1, result.out
    assert "beyond float16's largest value 65,504" in result.err, result.err
    assert "ship the float export" in result.err
