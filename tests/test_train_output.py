"""What `cbrun train` prints when its output is not a terminal (a log file, CI, a pipe):
one line per epoch, what the callbacks did under it, and the summary table, on a console
80 columns wide. Compared whole with a golden file; only what varies between two runs of
the same config is masked: the run id's time and the seconds each epoch took.

After a deliberate change of the output: CBRUN_UPDATE_GOLDEN=1 pytest tests/test_train_output.py
"""

import os
import re
from pathlib import Path

from conftest import cli_output, tiny_config, write_config

GOLDEN = Path(__file__).parent / "data" / "golden" / "train_plain.txt"
CALLBACKS = [
    {"type": "EarlyStopping", "monitor": "val_loss", "patience": 0, "min_delta": 0.5},
    {"type": "ModelCheckpoint", "filepath": "checkpoints/best.keras", "monitor": "val_loss",
     "save_best_only": True},
    {"type": "ReduceLROnPlateau", "monitor": "val_loss", "factor": 0.5, "patience": 0,
     "min_delta": 0.3},
]


def _mask(text: str) -> str:
    # Same widths as what they replace, so the table's borders stay where they were.
    text = re.sub(r"\b\d{8}-\d{6}-tiny\b", "YYYYMMDD-HHMMSS-tiny", text)
    # What `auto` chooses depends on how fast this machine runs a step.
    text = re.sub(r"steps_per_execution auto: \d+ batch(es)? per compiled call \([^)]*\)",
                  "steps_per_execution auto: N batches per compiled call (...)", text)
    return re.sub(r"  \d+\.\ds$", "  T.Ts", text, flags=re.MULTILINE)


def test_plain_output_and_summary_table(tmp_path, capsys, monkeypatch):
    write_config(tmp_path, tiny_config(fit={"epochs": 3}, callbacks=CALLBACKS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli_output(capsys, "train", "run.yaml", "--runs-dir", "runs")
    assert (code, err) == (0, "")
    shown = _mask(out)
    if os.environ.get("CBRUN_UPDATE_GOLDEN"):
        GOLDEN.write_text(shown)
    assert shown == GOLDEN.read_text()
