"""`cbrun data check` on a million-row Parquet table, as whole processes.

    .venv/bin/python bench/bench_data_check.py [--rows 1000000] [--repeats 3]

Writes a table of 20 number columns, 5 text categories and a text label (four classes)
into a temporary folder, then times `cbrun data check` on the file alone and on a config
that holds out validation_split 0.2 of it (stratified, drawn from the seed), each a new
`python -m cbrun` process (the interpreter's start and every import included). Prints the
median wall-clock seconds of each, its CPU seconds (user + system, all threads: what the
machine's load does not change) and the load average; the goal (issue 21) is under 10 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def write_table(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    columns = {f"x{i}": rng.normal(size=rows) for i in range(20)}
    for i in range(5):
        words = np.array([f"level{j}" for j in range(3 + 4 * i)])
        columns[f"c{i}"] = pa.array(words[rng.integers(len(words), size=rows)])
    columns["label"] = pa.array(np.array(["cat", "dog", "fox", "owl"])[
        rng.integers(4, size=rows)])
    pq.write_table(pa.table(columns), path)


CONFIG = """name: bench
data: {source: parquet, path: table.parquet, label: label, validation_split: 0.2}
model:
  input_shape: [25]
  layers: [{type: Dense, units: 4, activation: softmax}]
compile: {optimizer: adam, loss: sparse_categorical_crossentropy}
fit: {epochs: 1}
"""


def timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system, every thread) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cbrun", "data", "check", *args], cwd=cwd,
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"cbrun data check {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_table(root / "table.parquet", options.rows)
        (root / "bench.yaml").write_text(CONFIG)
        cases = {"file alone (--label label)": ["table.parquet", "--label", "label"],
                 "config, validation_split 0.2": ["bench.yaml"]}
        times = {name: [] for name in cases}
        for _ in range(options.repeats):
            for name, args in cases.items():
                times[name].append(timed(args, root))
        size = (root / "table.parquet").stat().st_size / 2**20
    print(f"{options.rows:,} rows x 26 columns ({size:.0f} MiB Parquet), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; seconds per process, median of "
          f"{options.repeats}")
    for name, values in times.items():
        walls, cpus = zip(*values, strict=True)
        print(f"  {name:30s} {statistics.median(walls):6.2f} s   (CPU {statistics.median(cpus):.2f}"
              f" s; all: {', '.join(f'{v:.2f}' for v in walls)})")


if __name__ == "__main__":
    main()
