"""`cbrun tensorboard`: one real TensorBoard over several runs, asked over HTTP which runs
and scalars it serves, then stopped."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import HANG_S, cbrun_process, cli, cli_output, tiny_config, write_config

TB = {"type": "TensorBoard", "log_dir": "tensorboard"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two runs with TensorBoard events and one without, in one runs folder."""
    folder = tmp_path_factory.mktemp("tb")
    for name, callbacks in (("first", [TB]), ("second", [TB]), ("plain", [])):
        path = write_config(folder, tiny_config(name=name, fit={"epochs": 2},
                                                callbacks=callbacks), f"{name}.yaml")
        assert cli("train", path, "--runs-dir", folder / "runs", "--quiet") == 0
    return folder / "runs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ask(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=HANG_S) as answer:
        return json.loads(answer.read())


def serve_and_ask(args: list, expected_runs: int) -> tuple[list[str], dict, str]:
    """Start `cbrun tensorboard ARGS` on a free loopback port, wait until it serves
    `expected_runs` runs (the ceiling only bounds a hang), read the runs and one run's
    epoch_loss, stop it."""
    port = free_port()
    proc = cbrun_process("tensorboard", *args, "--host", "127.0.0.1", "--port", port)
    try:
        deadline = time.monotonic() + HANG_S
        served: list[str] = []
        while len(served) < expected_runs:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"TensorBoard served only {served}"
            try:
                served = ask(port, "/data/runs")
            except OSError:  # not listening yet, or not answering yet (URLError is one)
                pass
            time.sleep(0.5)
        first = min(served)
        points = ask(port, f"/data/plugin/scalars/scalars?run={first}&tag=epoch_loss")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=HANG_S)
    return served, {first: points}, err


def test_serves_every_run_under_its_id(runs):
    ids = {p.name.split("-")[-1]: p.name for p in runs.iterdir()}
    served, scalars, err = serve_and_ask(["--runs-dir", runs], expected_runs=4)
    assert sorted(served) == sorted(f"{ids[n]}/{split}" for n in ("first", "second")
                                    for split in ("train", "validation"))
    (points,) = scalars.values()
    assert [step for _, step, _ in points] == [0, 1]  # both epochs of that run's loss
    assert f"no TensorBoard events in {ids['plain']}" in err


def test_serves_only_the_runs_given(runs):
    chosen = next(p for p in runs.iterdir() if p.name.endswith("-second"))
    served, _, _ = serve_and_ask([chosen], expected_runs=2)
    assert sorted(served) == [f"{chosen.name}/train", f"{chosen.name}/validation"]


def test_runs_without_events_are_refused_with_the_way_out(runs, capsys):
    plain = next(p for p in runs.iterdir() if p.name.endswith("-plain"))
    code, _, err = cli_output(capsys, "tensorboard", plain)
    assert code == 2
    assert "add `- {type: TensorBoard, log_dir: tensorboard}`" in err


def test_a_missing_folder_is_named(tmp_path, capsys):
    code, _, err = cli_output(capsys, "tensorboard", "--runs-dir", tmp_path / "nope")
    assert code == 2
    assert f"no such run directory: {tmp_path / 'nope'}" in err
