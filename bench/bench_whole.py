"""cbrun against the same training written by hand in Keras, as whole processes.

    make bench      # or: .venv/bin/python bench/bench_whole.py [--repeats 3] [--quick]

Two workloads of issue 13: the digits MLP (30 epochs, EarlyStopping that never fires,
best-only ModelCheckpoint, CSVLogger, TensorBoard, ReduceLROnPlateau) and a compute-bound
wide MLP (16384 x 512 float32, Dense 1024-1024-10, batch 256, 3 epochs, CSVLogger only).
Each round runs one `cbrun train` (through bench/fit_timeline.py, which marks the hooks) and
one hand-written script (bench/hand_keras.py), in turn, so the machine's load hits both
alike. Prints medians: the whole process, and its breakdown: import, build (everything
between the import and `fit`), first epoch, steady epochs, cbrun's own work per epoch
(its callbacks: state, run.json, display...), the time after the last epoch inside `fit`,
and after `fit` (saving the model, the summary, the process's exit); plus the
`steps_per_execution` that `auto` chose and the load average.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
KERAS_CALLBACKS = {"EarlyStopping", "ModelCheckpoint", "CSVLogger", "TensorBoard",
                   "ReduceLROnPlateau", "Marks"}
MARK = re.compile(r"^\[\s*([\d.]+)\] (.+?)(?: ([\d.]+)s)?$")


def configs(root: Path, epochs: dict[str, int]) -> dict[str, tuple[Path, Path]]:
    """{workload: (cbrun config, npz for the hand-written script)}."""
    digits = yaml.safe_load((REPO / "configs" / "digits.yaml").read_text())
    digits["fit"]["epochs"] = epochs["digits"]
    for callback in digits["callbacks"]:
        if callback["type"] == "EarlyStopping":
            callback["patience"] = 1000
    rng = np.random.default_rng(0)
    wide_npz = root / "wide.npz"
    np.savez(wide_npz, x=rng.normal(size=(16384, 512)).astype("float32"),
             y=rng.integers(0, 10, size=16384).astype("int32"))
    wide = {"name": "wide", "seed": 42,
            "data": {"source": "npz", "path": str(wide_npz), "batch_size": 256},
            "model": {"input_shape": [512], "layers": [
                {"type": "Dense", "units": 1024, "activation": "relu"},
                {"type": "Dense", "units": 1024, "activation": "relu"},
                {"type": "Dense", "units": 10, "activation": "softmax"}]},
            "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
            "fit": {"epochs": epochs["wide"]},
            "callbacks": [{"type": "CSVLogger", "filename": "log.csv"}]}
    out = {}
    for name, config in (("digits", digits), ("wide", wide)):
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        out[name] = (path, wide_npz if name == "wide"
                     else REPO / "cbrun" / "datasets" / "digits.npz")
    return out


def timeline(stderr: str, total: float) -> dict[str, float]:
    marks = [(float(m.group(1)), m.group(2), float(m.group(3) or 0))
             for m in map(MARK.match, stderr.splitlines()) if m]
    at = {name: t for t, name, _ in reversed(marks)}  # first occurrence
    # One mark per epoch: the last callback both sides have (cbrun's StateKeeper saves
    # after every other callback of the epoch; the script's Marks goes last).
    ends = [t for t, name, _ in marks if name in ("StateKeeper.on_epoch_end",
                                                  "Marks.on_epoch_end")]
    own = 0.0
    for t, name, took in marks:
        if name.endswith(".on_epoch_end") and name.split(".")[0] not in KERAS_CALLBACKS:
            own += took
    train_end = max(t for t, name, _ in marks if name.endswith(".on_train_end"))
    epochs = [b - a for a, b in itertools.pairwise(ends)]
    return {"total": total, "import": at["imported"],
            "build": at["fit entered"] - at["imported"],
            "first epoch": ends[0] - at["fit entered"],
            "steady epoch": statistics.median(epochs) if epochs else float("nan"),
            "cbrun per epoch": own / len(ends),
            "after last epoch": at["fit returned"] - train_end,
            "after fit": total - at["fit returned"]}


def run(command: list[str]) -> tuple[float, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900,
                          check=False)
    total = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    return total, proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["digits", "wide"])
    args = parser.parse_args()
    epochs = {"digits": 30, "wide": 3}
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    chosen: dict[str, int] = {}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        made = configs(root, epochs)
        names = [args.only] if args.only else list(made)
        for i in range(args.repeats):
            for name in names:
                config, npz = made[name]
                for side in ("cbrun", "keras"):  # in turn
                    loads.append(os.getloadavg()[0])
                    out = root / f"{name}-{side}-{i}"
                    if side == "cbrun":
                        total, err = run([sys.executable, str(BENCH / "fit_timeline.py"),
                                          str(config), "--runs-dir", str(out), "-q"])
                        record = json.loads(next(out.glob("*/run.json")).read_text())
                        chosen[name] = record["steps_per_execution"]
                    else:
                        total, err = run([sys.executable, str(BENCH / "hand_keras.py"), name,
                                          str(npz), str(out), str(epochs[name])])
                    results.setdefault(name, {}).setdefault(side, []).append(
                        timeline(err, total))
    print(f"median of {args.repeats}, whole processes in turn; load average "
          f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores")
    keys = ["total", "import", "build", "first epoch", "steady epoch", "cbrun per epoch",
            "after last epoch", "after fit"]
    for name, sides in results.items():
        med = {side: {k: statistics.median(r[k] for r in rows) for k in keys}
               for side, rows in sides.items()}
        ratio = med["cbrun"]["total"] / med["keras"]["total"]
        print(f"\n{name} ({epochs[name]} epochs): cbrun / Keras = {ratio:.2f}; "
              f"steps_per_execution auto chose {chosen[name]}")
        print(f"  {'seconds':<18}{'cbrun':>9}{'Keras':>9}")
        for k in keys:
            if k == "cbrun per epoch":
                print(f"  {k:<18}{med['cbrun'][k]:>9.3f}{'':>9}")
            else:
                print(f"  {k:<18}{med['cbrun'][k]:>9.2f}{med['keras'][k]:>9.2f}")


if __name__ == "__main__":
    main()
