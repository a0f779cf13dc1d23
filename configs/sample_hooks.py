"""Example functions for `type: LambdaCallback` (see lambda_callback.yaml next to this file).

Keras calls each with its hook's arguments ((epoch, logs) for on_epoch_end, (logs) for
on_train_end); cbrun adds, by keyword, the entries of `params` that the function names, and
`run_dir` (the run directory) to the functions that name it.
"""

from __future__ import annotations

import json


def log_epoch(epoch, logs, run_dir, filename, keys):
    """Append one JSON line per epoch with the chosen logged values."""
    line = {"epoch": epoch + 1, **{k: round(float(logs[k]), 6) for k in keys if k in logs}}
    with open(run_dir / filename, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def log_end(logs, run_dir, filename):
    """Append a last line when training ends."""
    with open(run_dir / filename, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"train_end": True, "loss": round(float(logs["loss"]), 6)})
                     + "\n")
