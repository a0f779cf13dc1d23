"""Where a tracked run's per-epoch cost comes from: one `cbrun train` of bench_tracking.py's
config, its epochs' begins and ends stamped by a LambdaCallback, and in the tracking process
each MLflow call (its start-up, each log_batch) stamped with that process's processor time,
through a `sitecustomize` put on the path of both processes (cbrun itself is unchanged).

    python bench/tracking_timeline.py [--epochs 16] [--store existing|sqlite|file]

Prints when the tracking process's start-up ended against training's first epoch, each
send of epochs (how many, processor ms, wall ms), the tracking process's processor time a
steady epoch, and the training thread's time in the tracking callback's hooks.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_tracking

SITE = '''import importlib.abc, importlib.util, os, sys, time

OUT = os.environ["CBRUN_TIMELINE"]
SPENT = {}


def stamp(what):
    with open(OUT, "a") as out:
        out.write(f"{time.monotonic():.4f} {time.process_time():.4f} {what}\\n")


def timed(cls, name, then):
    inner = getattr(cls, name)

    def call(*args, **kwargs):
        then(name, "begin", args)
        try:
            return inner(*args, **kwargs)
        finally:
            then(name, "end", args)
    setattr(cls, name, call)


def sink_call(name, when, args):
    stamp(f"{name}-{when}" + (f" {len(args[1])}" if name == "log_epochs" else ""))


def hook_call(name, when, args):
    if when == "begin":
        SPENT[name] = time.perf_counter()
        return
    stamp(f"hook {name} {(time.perf_counter() - SPENT[name]) * 1000:.3f}")


class Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in ("cbrun.tracking.mlflow_sink", "cbrun.engine.tracking"):
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            if name == "cbrun.engine.tracking":
                for hook in ("on_epoch_end", "on_train_batch_end"):
                    timed(module.TrackingCallback, hook, hook_call)
            else:
                for call in ("warm", "open", "log_epochs", "log_summary", "end"):
                    timed(module.MlflowSink, call, sink_call)
        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, Finder())
'''

MARKS = '''import time


def begin(epoch, logs, path):
    with open(path, "a") as out:
        out.write(f"{time.monotonic():.4f} {time.process_time():.4f} epoch{epoch + 1}-begin\\n")


def end(epoch, logs, path):
    with open(path, "a") as out:
        out.write(f"{time.monotonic():.4f} {time.process_time():.4f} epoch{epoch + 1}-end\\n")
'''


def run(epochs: int, store: str) -> str:
    with tempfile.TemporaryDirectory(prefix="tracking-timeline-") as scratch:
        top = Path(scratch)
        folder = top / "run"
        folder.mkdir()
        (top / "site").mkdir()
        (top / "site" / "sitecustomize.py").write_text(SITE)
        (folder / "timeline_marks.py").write_text(MARKS)
        stamps = folder / "stamps.txt"
        cfg = bench_tracking.config(epochs, stamps)
        cfg["callbacks"][-1] = {"type": "LambdaCallback", "on_epoch_begin": "timeline_marks:begin",
                                "on_epoch_end": "timeline_marks:end",
                                "params": {"path": str(stamps)}}
        cfg["tracking"] = {"mlflow": {"tracking_uri": bench_tracking.STORES[store][1](folder),
                                      "experiment": "bench"}}
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CBRUN_TIMELINE": str(stamps),
               "MLFLOW_ALLOW_FILE_STORE": "true",
               "PYTHONPATH": os.pathsep.join([str(bench_tracking.REPO), str(top / "site")])}
        if store == "existing":
            bench_tracking._make_store(top)
        (folder / "run.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        subprocess.run([sys.executable, "-m", "cbrun", "train", str(folder / "run.yaml"),
                        "--runs-dir", str(folder / "runs"), "--quiet"], env=env, cwd=folder,
                       check=True, capture_output=True)
        return stamps.read_text()


def summary(stamps: str) -> list[str]:
    at: dict[str, tuple[float, float]] = {}
    sends: list[tuple[int, float, float]] = []
    hooks: dict[str, list[float]] = {}
    for line in stamps.splitlines():
        wall, cpu, what, *rest = line.split(" ", 3)
        if what == "hook":
            name, ms = rest[0].split()
            hooks.setdefault(name, []).append(float(ms))
            continue
        at[what] = (float(wall), float(cpu))
        if what == "log_epochs-end":
            (w0, c0) = at["log_epochs-begin"]
            sends.append((int(rest[0]), (float(cpu) - c0) * 1000, (float(wall) - w0) * 1000))
    first = at["epoch1-begin"][0]
    ends = sorted(w for k, (w, _) in at.items() if k.startswith("epoch") and k.endswith("-end"))
    epochs = len(ends)
    steady = statistics.median(b - a for a, b in itertools.pairwise(ends))
    sent = sum(n for n, _, _ in sends)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    hook = hooks["on_epoch_end"]
    batch_ends = hooks.get("on_train_batch_end", [])
    batches = sum(batch_ends) / epochs
    return [
        (f"load average {load} on {os.cpu_count()} cores; {epochs} epochs, steady epoch "
         f"{steady * 1000:.0f} ms"),
        (f"tracking start-up (to the run's opening): {at['open-begin'][1]:.2f} s of processor "
         f"time, ended {at['open-begin'][0] - first:+.2f} s from epoch 1's begin"),
        "sends (epochs, processor ms, wall ms): "
        + " ".join(f"({n}, {c:.0f}, {w:.0f})" for n, c, w in sends),
        (f"tracking process a sent epoch: {sum(c for _, c, _ in sends) / max(sent, 1):.1f} ms "
         "of processor time"),
        (f"training thread in the tracking callback: epoch 1's end {hook[0]:.1f} ms, a later "
         f"epoch's end {statistics.median(hook[1:]):.2f} ms (median), its {len(batch_ends)} batch ends "
         f"{batches:.2f} ms an epoch"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--store", choices=sorted(bench_tracking.STORES), default="existing")
    args = parser.parse_args()
    print("\n".join(summary(run(args.epochs, args.store))))


if __name__ == "__main__":
    main()
