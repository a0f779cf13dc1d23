"""A sweep's time per trial against the trials' own training time, as whole processes.

    .venv/bin/python bench/bench_sweep.py [--repeats 3] [--jobs 1]

A 4-trial sweep of 3-epoch digits trials (configs/digits.yaml, its five callbacks; the
learning rate and the hidden units searched), run as `cbrun sweep` from the process's start
to its end (Optuna, the study, every trial, the table, best.yaml and the plots), twice per
round and in turn: with the warm workers (TensorFlow imported once per worker) and with
`--process-per-trial` (a `python -m cbrun train` per trial, as before). Prints medians.

A trial's own time is what its run.json records (`duration_s`: its segment, from run.json's
first write to its last: the data, the model, the epochs, the model's save and the test
split). The warm sweeps' trials are the denominator of both rows (in a process of its own a
trial's segment holds TensorFlow's import too); both modes train the same four configs.

The sweep's time splits into its start (the process's start to the first trial's segment:
Python, Optuna, the sweep file checked, the study made, the first worker's TensorFlow
import), its trials (each segment start to the next: the training and what the sweep does
between two trials), and its end (the last segment's end to the process's end: the
worker's end, the table, best.yaml and the four PNGs). The goal's figure (issue 28: a
sweep's time per trial over the trial's own time <= 1.2) is the middle part, "per trial":
the time from the first trial's start to the last's over the training of those trials,
what each further trial of a longer sweep costs. The whole sweep over its trials' own
time is shown too, with its fixed start and end named in seconds, and what a sweep of 20
such trials would take (start + end + 20 x per trial).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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
LONGER = 20  # the sweep the extrapolation line speaks of


@dataclass
class Timed:
    """One `cbrun sweep` process, its times relative to its start."""

    wall: float  # the whole process, seconds
    cpu: float  # user + system seconds of it and every process it waited for (the workers)
    starts: list[float]  # each trial's segment start, by trial number
    ends: list[float]  # each trial's segment end
    own: list[float]  # each trial's run.json duration_s

    @property
    def start(self) -> float:
        """Before the first trial's segment: Python, Optuna, the sweep checked, the study,
        the first worker's TensorFlow import."""
        return min(self.starts)

    @property
    def end(self) -> float:
        """After the last trial's segment: the table, best.yaml, the plots."""
        return self.wall - max(self.ends)

    @property
    def between(self) -> float:
        """From one trial's segment start to the next's, on average."""
        return (max(self.starts) - min(self.starts)) / (len(self.starts) - 1)


def one_sweep(root: Path, extra: list[str], jobs: int) -> Timed:
    folder = Path(tempfile.mkdtemp(dir=root))
    (folder / "sweep.yaml").write_text(SWEEP)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    began, started = time.time(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cbrun", "sweep", "sweep.yaml", "--jobs",
                           str(jobs), *extra], cwd=folder, env=env, capture_output=True,
                          text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"the sweep failed:\n{done.stdout}\n{done.stderr}")
    trials = folder / "runs" / "sweeps" / "bench" / "trials"
    runs = sorted((json.loads((d / "run.json").read_text()) for d in trials.iterdir()),
                  key=lambda run: run["sweep"]["trial"])
    assert len(runs) == TRIALS, runs

    def since(stamp: str) -> float:
        return datetime.fromisoformat(stamp).timestamp() - began

    return Timed(wall=seconds,
                 cpu=(after.ru_utime - used.ru_utime) + (after.ru_stime - used.ru_stime),
                 starts=[since(run["segments"][0]["started"]) for run in runs],
                 ends=[since(run["segments"][-1]["finished"]) for run in runs],
                 own=[run["duration_s"] for run in runs])


def per_trial(sweep: Timed, own: list[float]) -> float:
    """The goal's figure: from the first trial's start to the last's, over the own time of
    the trials in it (all but the last; the first, which pays a process's first-time costs
    in its own time, counted in both)."""
    order = sorted(range(len(sweep.starts)), key=sweep.starts.__getitem__)
    return (max(sweep.starts) - min(sweep.starts)) / sum(own[i] for i in order[:-1])


def report(repeats: int, jobs: int = 1) -> str:
    """Runs the sweeps and returns the block it prints."""
    load_before = os.getloadavg()[0]
    runs: dict[str, list[Timed]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="cbrun-bench-sweep-") as root:
        for _ in range(repeats):
            for mode, extra in MODES.items():
                runs[mode].append(one_sweep(Path(root), extra, jobs))
    load_after = os.getloadavg()[0]
    warm = runs["warm workers"]

    def median(values) -> float:
        return statistics.median(list(values))

    trained = median(statistics.mean(sweep.own) for sweep in warm)
    lines = [(f"sweep of {TRIALS} trials (digits, 3 epochs), --jobs {jobs}, median of "
              f"{repeats}; a trial's own time: {trained:.2f} s (run.json duration_s, warm)"),
             (f"  {'':20} {'per trial':>9} {'ratio':>6} {'start':>7} {'end':>6} "
              f"{'sweep':>7} {'ratio':>6} {'cpu':>6} {f'{LONGER} trials':>10} {'ratio':>6}")]
    for mode in MODES:
        # Each sweep against the warm sweep of its round: the same four configs.
        ratio = median(per_trial(sweep, base.own) for sweep, base in zip(runs[mode], warm))
        between = median(sweep.between for sweep in runs[mode])
        start = median(sweep.start for sweep in runs[mode])
        end = median(sweep.end for sweep in runs[mode])
        whole = median(sweep.wall for sweep in runs[mode])
        whole_ratio = median(sweep.wall / sum(base.own) for sweep, base in zip(runs[mode], warm))
        longer = start + end + LONGER * between
        cpu = median(sweep.cpu for sweep in runs[mode])
        lines.append(f"  {mode:20} {between:8.2f}s {ratio:6.2f} {start:6.1f}s {end:5.1f}s "
                     f"{whole:6.1f}s {whole_ratio:6.2f} {cpu:5.1f}s {longer:9.0f}s "
                     f"{longer / (LONGER * trained):6.2f}")
    lines += [
        ("  per trial: from one trial's start to the next's; its ratio: over the own time of "
        "the trials in it (the goal, issue 28: <= 1.2)"),
        ("  start: the process's start to the first trial's; end: the last trial's end to the "
        "process's end (the table, best.yaml, four PNGs)"),
        (f"  sweep: the whole process, its ratio over its trials' own time; cpu: its and its "
        f"workers' user+sys; {LONGER} trials: start + end + {LONGER} x per trial"),
        (f"  load average (1 min) {load_before:.1f} before, {load_after:.1f} after, "
        f"{os.cpu_count()} cores")]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    print(report(args.repeats, args.jobs))


if __name__ == "__main__":
    main()
