"""A streamed table against the same table read whole, and against a hand-written tf.data
pipeline over the same Parquet files: one training epoch each, in a process of its own,
with its peak resident memory (the kernel's ru_maxrss of that process) and its rows/s.

Writes a synthetic table of --rows rows and --cols float32 feature columns plus an integer
label, as --shards Parquet files in row groups of --row-group rows, then trains one epoch of
the same MLP (Dense 64, Dense 2) with batch --batch:

- cbrun, streamed: `cbrun train` with `stream: true` (what `auto` picks for a table over a
  quarter of the memory available);
- cbrun, in memory: `cbrun train` with `stream: false`, only when --rows <= --memory-rows
  (a table that fits);
- tf.data by hand: pyarrow record batches of the files in a generator, shuffled with a
  buffer of --window rows, batched, fed to `model.fit`.

rows/s is the epoch's rows over the epoch's seconds (cbrun's progress line; the hand
pipeline's own clock around fit), so the process start, the imports and cbrun's pass over
the table before training are not in it; the whole process's wall time is shown beside it.

    .venv/bin/python bench/bench_stream.py --rows 2000000 --cols 30 --shards 40
    .venv/bin/python bench/bench_stream.py --rows 20000000 --cols 30 --shards 40  # the goal

Memory that does not grow with the rows: the same streamed run at two sizes, held-out
rows drawn, e.g.

    .venv/bin/python bench/bench_stream.py --rows 4000000 --cols 8 --validation 0.1 --only stream
    .venv/bin/python bench/bench_stream.py --rows 16000000 --cols 8 --validation 0.1 --only stream
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
CODE = REPO  # the cbrun that the runs import (--code)


def write_table(folder: Path, rows: int, cols: int, shards: int, row_group: int) -> int:
    """Shards of a table whose label is a linear function of its columns plus noise; the
    bytes written."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    weights = rng.normal(size=cols)
    per = -(-rows // shards)
    for s in range(shards):
        n = min(per, rows - s * per)
        if n <= 0:
            break
        x = rng.normal(size=(n, cols)).astype(np.float32)
        label = ((x @ weights + rng.normal(size=n)) > 0).astype(np.int32)
        table = pa.table({**{f"f{i:02d}": x[:, i] for i in range(cols)}, "label": label})
        pq.write_table(table, folder / f"part-{s:05d}.parquet", row_group_size=row_group)
    return sum(p.stat().st_size for p in folder.iterdir())


def config(path: str, cols: int, batch: int, stream: bool, window: int,
           validation: float = 0.0) -> dict:
    return {"name": "bench", "seed": 1,
            "data": {"source": "parquet", "path": path, "label": "label", "batch_size": batch,
                     "stream": stream, "shuffle_window": window,
                     "validation_split": validation},
            "model": {"input_shape": [cols], "layers": [
                {"type": "Dense", "units": 64, "activation": "relu"},
                {"type": "Dense", "units": 2, "activation": "softmax"}]},
            "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
            "fit": {"epochs": 1, "state_every": None}, "callbacks": []}


HAND = r'''
import json, sys, time, glob, resource
import numpy as np, pyarrow.parquet as pq, tensorflow as tf, keras
folder, cols, batch, window = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
files = sorted(glob.glob(folder + "/*.parquet"))
names = [f"f{i:02d}" for i in range(cols)]
rows = sum(pq.read_metadata(f).num_rows for f in files)

def generate():
    for f in files:
        for b in pq.ParquetFile(f).iter_batches(batch_size=65536, columns=names + ["label"]):
            x = np.stack([b.column(n).to_numpy() for n in names], axis=1)
            yield x, b.column("label").to_numpy()

data = (tf.data.Dataset.from_generator(generate, output_signature=(
            tf.TensorSpec((None, cols), tf.float32), tf.TensorSpec((None,), tf.int32)))
        .unbatch().shuffle(window, seed=1).batch(batch).prefetch(tf.data.AUTOTUNE))
keras.utils.set_random_seed(1)
model = keras.Sequential([keras.Input((cols,)), keras.layers.Dense(64, activation="relu"),
                          keras.layers.Dense(2, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy")
start = time.perf_counter()
model.fit(data, epochs=1, verbose=0)
seconds = time.perf_counter() - start
print(json.dumps({"rows": rows, "epoch_s": seconds}))
'''


def measure(command: list[str], cwd: Path) -> tuple[str, float, float]:
    """(stdout, wall seconds, peak RSS in MB) of one child process: its own ru_maxrss, from
    wait4 on it alone."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err, text=True,
                                 env={**os.environ, "PYTHONPATH": str(CODE),
                                      "COLUMNS": "200"})
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read()
        if child.returncode != 0:
            raise SystemExit(f"{command[:4]} failed ({child.returncode}):\n{text}\n{err.read()}")
    return text, wall, usage.ru_maxrss / 1024


def cbrun_mode(folder: Path, args, stream: bool) -> dict:
    import yaml

    path = folder / f"bench-{'stream' if stream else 'memory'}.yaml"
    path.write_text(yaml.safe_dump(config("table", args.cols, args.batch, stream, args.window,
                                          args.validation)))
    out, wall, peak = measure([sys.executable, "-m", "cbrun", "train", str(path),
                               "--runs-dir", str(folder / "runs")], folder)
    found = re.search(r"epoch 1/1 .*?(\d+(?:\.\d+)?)s\s*$", out, re.MULTILINE)
    epoch = float(found.group(1)) if found else float("nan")
    first = next((line for line in out.splitlines() if line.startswith("data:")), "")
    return {"epoch_s": epoch, "rows_s": args.rows / epoch, "wall_s": wall, "peak_mb": peak,
            "said": first}


def hand_mode(folder: Path, args) -> dict:
    out, wall, peak = measure([sys.executable, "-c", HAND, str(folder / "table"),
                               str(args.cols), str(args.batch), str(args.window)], folder)
    result = json.loads(out.strip().splitlines()[-1])
    return {"epoch_s": result["epoch_s"], "rows_s": result["rows"] / result["epoch_s"],
            "wall_s": wall, "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--cols", type=int, default=30)
    parser.add_argument("--shards", type=int, default=40)
    parser.add_argument("--row-group", type=int, default=65_536)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--window", type=int, default=262_144, help="shuffle window, rows")
    parser.add_argument("--memory-rows", type=int, default=4_000_000,
                        help="the in-memory path runs only on tables up to this many rows")
    parser.add_argument("--only", choices=["stream", "memory", "hand"], action="append")
    parser.add_argument("--validation", type=float, default=0.0,
                        help="validation_split of the cbrun runs (held-out rows drawn too)")
    parser.add_argument("--code", type=Path, default=REPO,
                        help="the cbrun checkout that runs (default: this one), to measure "
                             "another version on the same table")
    parser.add_argument("--dir", type=Path, help="keep the table here (default: a temporary "
                                                 "folder)")
    args = parser.parse_args()
    global CODE
    CODE = args.code.resolve()
    modes = args.only or ["stream", "memory", "hand"]
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.dir or Path(scratch)
        table = folder / "table"
        if not table.is_dir():
            size = write_table(table, args.rows, args.cols, args.shards, args.row_group)
        else:
            size = sum(p.stat().st_size for p in table.iterdir())
        raw = args.rows * (args.cols + 1) * 4
        print(f"table: {args.rows:,} rows x {args.cols} float32 columns + label, "
              f"{args.shards} Parquet files, {size / 1e6:,.0f} MB on disk, "
              f"{raw / 1e6:,.0f} MB as float32 arrays")
        for mode in modes:
            if mode == "memory" and args.rows > args.memory_rows:
                print(f"{mode:>7}: skipped (over --memory-rows)")
                continue
            found = (hand_mode(folder, args) if mode == "hand" else
                     cbrun_mode(folder, args, mode == "stream"))
            print(f"{mode:>7}: {found['rows_s']:>10,.0f} rows/s  epoch {found['epoch_s']:6.1f} s"
                  f"  process {found['wall_s']:6.1f} s  peak RSS {found['peak_mb']:7,.0f} MB")
            if found.get("said"):
                print(f"         {found['said']}")


if __name__ == "__main__":
    main()
