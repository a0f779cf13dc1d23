"""run.json: one typed record, written and read through the same model; a hand edit that
breaks it is named in one line (exit 2), never a traceback. No TensorFlow here: every run
directory is made by hand from a real config and cbrun's own record."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from conftest import FAKE_RUN, cli, cli_output, tiny_config, write_config

from cbrun.run.record import RunFile, RunRecord, StopReason, SweepTrial, read_lenient


def _record_run(tmp_path, **changes):
    """A run directory as `cbrun train` leaves it after a Ctrl-C at epoch 0: config files,
    run.json written by RunRecord, no state (resume would start from epoch 1)."""
    run = tmp_path / "runs" / "20261130-000000-tiny"
    run.mkdir(parents=True)
    config = write_config(tmp_path, tiny_config())
    shutil.copy(config, run / "config.yaml")
    shutil.copy(config, run / "resolved.yaml")
    record = RunRecord.new(run, "tiny", 7, 4, ("val_loss", "min"), ["cbrun", "train"],
                           config_dir=tmp_path, overrides=[])
    record.begin_segment("train", 1, ["cbrun", "train"])
    record.interrupted(0, None, "Ctrl-C")
    data = json.loads((run / "run.json").read_text())
    data.update(changes)
    (run / "run.json").write_text(json.dumps(data))
    return run


def test_the_record_reads_back_what_it_wrote(tmp_path):
    run = _record_run(tmp_path)
    record = RunRecord.load(run)
    assert (record.status, record.epochs_done, record.file.seed) == ("interrupted", 0, 7)
    assert record.file.segments[0].status == "interrupted"
    record.finish("stopped_early", stopped_early_at=3, stop_reason=StopReason.EARLY_STOPPING,
                  stop_note="EarlyStopping ended the run at epoch 3")
    again = RunRecord.load(run)
    assert again.file == record.file
    assert json.loads((run / "run.json").read_text())["stop_reason"] == "early_stopping"


def test_a_killed_segment_counts_its_time_up_to_its_last_record(tmp_path):
    """kill -9 leaves the segment `running` with no time added; the next segment (resume)
    marks it killed and counts it up to run.json's last write, its last epoch's end."""
    import os
    from datetime import UTC, datetime, timedelta

    run = _record_run(tmp_path)
    data = json.loads((run / "run.json").read_text())
    started = datetime.now(UTC) - timedelta(hours=1)
    data["segments"][-1].update(status="running", finished=None, started=started.isoformat())
    data.update(status="running", duration_s=2.5)
    (run / "run.json").write_text(json.dumps(data))
    last = (started + timedelta(seconds=40)).timestamp()
    os.utime(run / "run.json", (last, last))
    record = RunRecord.load(run)
    record.begin_segment("resume", 1, ["cbrun", "resume"])
    killed = record.file.segments[0]
    assert killed.status == "killed"
    assert record.file.duration_s == pytest.approx(42.5, abs=0.01)
    assert datetime.fromisoformat(killed.finished).timestamp() == pytest.approx(last)


def test_a_pruned_sweep_trial_keeps_its_sweep_and_is_not_resumed(tmp_path, capsys):
    run = _record_run(tmp_path)
    record = RunRecord.load(run)
    record.file.sweep = SweepTrial(id="search", trial=3, study="search",
                                   metric="val_loss", direction="minimize",
                                   pruner={"type": "median"}, storage="sqlite:///s.db",
                                   sweep_dir=str(tmp_path))
    record.finish("pruned", stop_reason=StopReason.PRUNED,
                  stop_note="pruned by the sweep after epoch 2")
    data = json.loads((run / "run.json").read_text())
    assert (data["status"], data["stop_reason"]) == ("pruned", "pruned")
    assert (data["sweep"]["id"], data["sweep"]["trial"]) == ("search", 3)
    assert RunRecord.load(run).file == record.file
    code, _, err = cli_output(capsys, "resume", run)
    assert code == 2
    assert err.count("\n") == 1 and "was pruned by its sweep (pruned by the sweep after " \
        "epoch 2)" in err, err


def test_a_record_of_cbrun_0_1_still_reads():
    data = json.loads((FAKE_RUN / "run.json").read_text())
    data.update(status="failed", stop_reason="loss became NaN or inf")
    file, dropped = read_lenient(data)
    assert dropped == []
    assert file.stop_reason is StopReason.NAN_LOSS
    data.update(status="stopped_early",
                stop_reason="EarlyStopping ended the run at epoch 17: val_loss did not improve")
    assert RunFile.model_validate(data).stop_reason is StopReason.EARLY_STOPPING


@pytest.mark.parametrize("edit, expected", [
    ({"epochs_done": "six"}, "epochs_done: input should be a valid integer (it holds 'six')"),
    ({"segments": [None]}, "segments[0]: input should be a valid dictionary (it holds None)"),
    ({"status": "paused"}, "status: input should be 'running', 'completed'"),
    ({"seed": True}, "seed: input should be a valid integer (it holds True)"),
])
def test_resume_names_what_is_wrong_in_an_edited_run_json(tmp_path, capsys, edit, expected):
    run = _record_run(tmp_path, **edit)
    before = (run / "run.json").read_bytes()
    assert cli("resume", run) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{run / 'run.json'} is not a run record cbrun wrote: {expected}" in err, err
    assert (run / "run.json").read_bytes() == before


def test_resume_says_a_run_json_that_is_not_utf8(tmp_path, capsys):
    run = _record_run(tmp_path)
    (run / "run.json").write_bytes((run / "run.json").read_bytes().replace(b'"tiny"',
                                                                            b'"t\xffny"'))
    assert cli("resume", run) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not UTF-8 text (invalid start byte at byte" in err, err


@pytest.mark.parametrize("field, value, why", [
    ("seed", 8, "the saved random states came from it"),
    ("name", "other", "the run id is made from it"),
])
def test_an_edited_resolved_yaml_cannot_change_seed_or_name(tmp_path, capsys, field, value,
                                                             why):
    run = _record_run(tmp_path)
    resolved = yaml.safe_load((run / "resolved.yaml").read_text())
    resolved[field] = value
    (run / "resolved.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    before = _files(run)
    assert cli("resume", run) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"has {field}: {value!r}, but the run was trained with {field}" in err
    assert why in err
    assert _files(run) == before


def _files(run):
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
