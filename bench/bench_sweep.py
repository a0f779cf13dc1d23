"""A sweep's time per trial against the trials' own training time, as whole processes.

    .venv/bin/python bench/bench_sweep.py [--repeats 3] [--jobs 1]

A 4-trial sweep of 3-epoch digits trials (configs/digits.yaml, its five callbacks; the
learning rate and the hidden units searched), run as `cbrun sweep` from the process's start
to its end (Optuna, the study, every trial, the table, best.yaml and the plots), twice per
round and in turn: with the warm workers (TensorFlow imported once per worker) and with
`--process-per-trial` (a `python -m cbrun train` per trial, as before). Prints medians.

A trial's own time is what its run.json records (`duration_s`: its segment, from run.json's
first write to its last: the data, the model, the epochs, the model's save and the test
split), read from the warm sweeps' trials, where no TensorFlow import is in it (in a
process of its own the trial's segment includes that import); the same trials, drawn
alike, are the denominator of both rows. Goal (issue 28): a sweep's time per trial over
its trials' own time <= 1.2. Also shown: the time from one trial's start to the next's
(the sweep's own start, Optuna and the study, and its end, the table and the plots, left
out), which is what each further trial of a longer sweep costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRIALS = 4
SWEEP = f"""\
name: bench
base: {REPO / "configs" / "digits.yaml"}
set: [fit.epochs=3]
space:
  compile.optimizer.learning_rate: {{type: loguniform, low: 1.0e-3, high: 1.0e-2}}
  model.layers[1].units: {{type: choice, values: [32, 64, 128]}}
trials: {TRIALS}
sampler: random
seed: 1
"""
MODES = {"warm workers": [], "a process per trial": ["--process-per-trial"]}


def one_sweep(root: Path, extra: list[str], jobs: int) -> tuple[float, list[float], float]:
    """(the whole `cbrun sweep` process's seconds, each trial's run.json duration_s, the
    seconds from the first trial's start to the last's over the trials in between)."""
    folder = Path(tempfile.mkdtemp(dir=root))
    (folder / "sweep.yaml").write_text(SWEEP)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cbrun", "sweep", "sweep.yaml", "--jobs",
                           str(jobs), *extra], cwd=folder, env=env, capture_output=True,
                          text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the sweep failed:\n{done.stdout}\n{done.stderr}")
    trials = folder / "runs" / "sweeps" / "bench" / "trials"
    runs = sorted((json.loads((d / "run.json").read_text()) for d in trials.iterdir()),
                  key=lambda run: run["segments"][0]["started"])
    assert len(runs) == TRIALS, runs
    starts = [datetime.fromisoformat(run["segments"][0]["started"]) for run in runs]
    between = (starts[-1] - starts[0]).total_seconds() / (TRIALS - 1)
    return seconds, [run["duration_s"] for run in runs], between


def report(repeats: int, jobs: int = 1) -> str:
    """Runs the sweeps and returns the block it prints."""
    load_before = os.getloadavg()[0]
    wall: dict[str, list[float]] = {mode: [] for mode in MODES}
    own: dict[str, list[float]] = {mode: [] for mode in MODES}
    steady: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="cbrun-bench-sweep-") as root:
        for _ in range(repeats):
            for mode, extra in MODES.items():
                seconds, durations, between = one_sweep(Path(root), extra, jobs)
                wall[mode].append(seconds)
                own[mode].append(statistics.mean(durations))
                steady[mode].append(between)
    load_after = os.getloadavg()[0]
    trained = statistics.median(own["warm workers"])
    lines = [(f"sweep of {TRIALS} trials (digits, 3 epochs), --jobs {jobs}, median of "
              f"{repeats}; a trial's own time: {trained:.2f} s (run.json duration_s, warm)"),
             (f"  {'':22} {'sweep s':>8} {'s/trial':>8} {'ratio':>6} {'between':>8} "
              f"{'ratio':>6} {'own s':>7}")]
    for mode in MODES:
        seconds = statistics.median(wall[mode])
        per_trial = seconds / TRIALS
        between = statistics.median(steady[mode])
        lines.append(f"  {mode:22} {seconds:8.1f} {per_trial:8.2f} {per_trial / trained:6.2f} "
                     f"{between:8.2f} {between / trained:6.2f} "
                     f"{statistics.median(own[mode]):7.2f}")
    lines.append("  s/trial: the whole sweep over its trials; between: from one trial's start "
                 "to the next's, the sweep's start and end left out;")
    lines.append("  ratio: each over a trial's own time; goal <= 1.2 (issue 28). own s: "
                 "run.json duration_s (with its TensorFlow import, in a process per trial)")
    lines.append(f"  load average (1 min) {load_before:.1f} before, {load_after:.1f} after, "
                 f"{os.cpu_count()} cores")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    print(report(args.repeats, args.jobs))


if __name__ == "__main__":
    main()
