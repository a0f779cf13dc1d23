"""`compile.mixed_precision`: both policies train, and a mixed_float16 run SIGKILLed and
resumed ends like the uninterrupted one: log.csv byte for byte, every variable (the loss
scale's included). cbrun sets either policy by the same line (engine/session.py) and saves the
same variables; only mixed_float16 adds state (Keras's loss-scale optimizer), so it is the one
killed and resumed."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
from conftest import (
    HANG_S,
    cbrun_process,
    cli,
    cli_output,
    only_run,
    tiny_config,
    write_config,
)

from cbrun.state.files import FAULT_ENV

POLICIES = ["mixed_float16", "mixed_bfloat16"]


def config(policy: str) -> dict:
    base = tiny_config(name=policy.replace("_", "-"), fit={"epochs": 3})
    base["compile"]["mixed_precision"] = policy
    return base


def final_variables(run) -> dict[str, np.ndarray]:
    with np.load(run / "state" / "epoch-00003" / "variables.npz") as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    policy = "mixed_float16"
    path = write_config(root, config(policy), f"{policy}.yaml")
    # The kill needs a process of its own; the uninterrupted run trains in this process
    # meanwhile and the resume follows here (cbrun starts each run from a clean Keras
    # session and gives the policy back after it; a TensorFlow import saved for each).
    proc = cbrun_process("train", path, "--runs-dir", root / policy / "killed", "-q",
                         env={FAULT_ENV: "2"})
    whole = (cli("train", path, "--runs-dir", root / policy / "whole", "-q"), "")
    _out, err = proc.communicate(timeout=HANG_S)
    killed = (proc.returncode, err)
    resumed = ((cli("resume", only_run(root / policy / "killed"), "-q"), "")
               if killed[0] == -signal.SIGKILL else None)
    return {policy: {"root": root / policy, "whole": whole, "killed": killed,
                     "resumed": resumed}}


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """mixed_bfloat16 trained in this process, as a notebook would: Keras's policy is
    process-wide, so what it is right after the run is kept for the test of it."""
    import keras

    root = tmp_path_factory.mktemp("bfloat16")
    path = write_config(root, config("mixed_bfloat16"))
    code = cli("train", path, "--runs-dir", root / "whole", "-q")
    return {"root": root, "code": code,
            "policy after": keras.mixed_precision.dtype_policy().name,
            "dense after": keras.layers.Dense(2).compute_dtype}


@pytest.mark.parametrize("policy", POLICIES)
def test_mixed_precision_trains_in_its_policy(request, policy):
    if policy == "mixed_float16":
        entry = request.getfixturevalue("runs")[policy]
        code, err = entry["whole"]
        assert code == 0, err[-3000:]
    else:
        entry = request.getfixturevalue("in_process")
        assert entry["code"] == 0
    run = only_run(entry["root"] / "whole")
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    import keras

    model = keras.saving.load_model(run / "model.keras", compile=False)
    hidden, output = model.layers[1], model.layers[-1]
    assert hidden.dtype_policy.name == policy and hidden.compute_dtype != "float32"
    assert hidden.kernel.dtype == "float32"  # variables stay float32
    assert output.compute_dtype == "float32"  # the softmax too


def test_mixed_precision_killed_and_resumed_ends_exactly_like_the_whole_run(runs):
    entry = runs["mixed_float16"]
    assert entry["killed"][0] == -signal.SIGKILL, entry["killed"][1][-3000:]
    assert entry["resumed"][0] == 0, entry["resumed"][1][-3000:]
    whole = only_run(entry["root"] / "whole")
    resumed = only_run(entry["root"] / "killed")
    assert (resumed / "log.csv").read_bytes() == (whole / "log.csv").read_bytes()
    a, b = final_variables(whole), final_variables(resumed)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    meta = json.loads((whole / "state" / "epoch-00003" / "state.json").read_text())
    # Keras wrapped the optimizer: its step counter and dynamic scale are saved too.
    assert len(meta["optimizer_shapes"]) > len(meta["model_shapes"]) * 2 + 2


def test_the_policy_cannot_change_on_resume(runs, capsys):
    run = only_run(runs["mixed_float16"]["root"] / "whole")
    result = cli_output(capsys, "resume", run, "--epochs", "4",
                        "--set", "compile.mixed_precision=mixed_bfloat16")
    assert result.code == 2
    assert "--set cannot change compile.mixed_precision on resume" in result.err


def test_an_unknown_policy_is_refused_before_tensorflow(tmp_path, capsys):
    path = write_config(tmp_path, config("mixed_float16"))
    result = cli_output(capsys, "validate", path, "--set", "compile.mixed_precision=float16")
    assert result.code == 2
    assert "compile.mixed_precision" in result.out + result.err
    assert "mixed_bfloat16" in result.out + result.err


def test_a_mixed_precision_run_gives_the_process_its_policy_back(in_process):
    """Keras's policy is process-wide: after cbrun trains in a notebook's process, the
    notebook's own models are float32 again."""
    assert in_process["code"] == 0
    assert in_process["policy after"] == "float32"
    assert in_process["dense after"] == "float32"
