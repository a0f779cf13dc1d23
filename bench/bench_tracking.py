"""What MLflow tracking adds to a run: whole `cbrun train` processes of a small digits config
(the MLP with EarlyStopping, ModelCheckpoint, CSVLogger, TensorBoard and ReduceLROnPlateau),
untracked and tracked to a fresh local store (SQLite; a folder store, which MLflow takes
with MLFLOW_ALLOW_FILE_STORE=true) and to an SQLite store that exists already, in turn,
medians of `--repeats`.

    python bench/bench_tracking.py [--repeats 3] [--epochs 4] [--steady-epochs 32]
                                   [--stores sqlite,existing,file]

The run's part of the goal (issue 28: at most 1 s a run plus at most 2% an epoch) is judged
by the `--epochs` runs: the added seconds a run (less that many epochs of the steady
epoch's added wall time), printed beside their epoch and processor seconds (user + system,
the tracking process's included: what the load disturbs least). `report(repeats)` returns
the printed block (for `make bench`).

The epoch's part comes from longer runs (`--steady-epochs`), in the order U T T T U T T T U
(U untracked, T one per store): a run of 4 epochs holds what a tracked run pays once (run.json
written when the MLflow run's id comes back, the first sends to the store), and 2% of a
0.16 s epoch is 3 ms, which whole processes on a shared machine do not resolve by wall
clock (their steady epochs differ by 10-20% between neighbouring runs of the same side).
Two figures a store:

- *wall added*: each tracked run's median steady epoch against the mean of the untracked
  runs just before and after its round, the median of those pairs and their [min, max];
- *tracking work*: what the tracking does in a steady epoch, measured directly rather than
  as a difference: the training thread's wall time in the tracking callback's hooks (timed
  by a `sitecustomize` put on both sides' path), plus the processor time of the training
  process's two tracking threads and of the tracking process (their CPU clocks, read at
  each epoch's end by the LambdaCallback both sides run), over the steady epochs after the
  first quarter of each run, against the untracked steady epoch. The training thread can
  lose no more than that to the tracking, whatever the load (the tracking process takes
  at most its processor time from the cores training uses), so it is an upper bound on
  the wall added, and it is what the goal's epoch part is judged by.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
GOAL_RUN_S = 1.0
GOAL_EPOCH_SHARE = 0.02
STEADY_EPOCHS = 64
STEADY_ROUNDS = 2  # of the longer runs, at most (the report's repeats if fewer)
# More of the tracking process's processor time than this between two epoch ends is a send
# (an epoch that sends nothing costs it ~0.3 ms: the epoch's item read and queued).
SEND_SECONDS = 0.005

# The LambdaCallback both sides run: at each epoch's end, a line of when it ended and what
# the tracking work has used so far (0 for an untracked run): the training thread's seconds
# in the tracking callback's hooks (PROBE), the processor seconds of the training process's
# two tracking threads (sender.py's feeder and reader) and of the whole tracking process
# (every thread, ended ones included: its process clock).
MARKS = '''import os, threading, time

FOUND = {}


def _child():
    if "pid" not in FOUND:  # the tracking process: this one's child (one look, then kept)
        FOUND["pid"] = None
        me = str(os.getpid())
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        fields = stat.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if fields[1] == me:
                    FOUND["pid"] = int(entry)
                    break
    return FOUND["pid"]


def _clock(clock_id):
    try:
        return time.clock_gettime(clock_id)
    except OSError:
        return 0.0


def mark(epoch, logs, path):
    import sitecustomize

    threads = sum(_clock(time.pthread_getcpuclockid(t.ident)) for t in threading.enumerate()
                  if t.name.startswith("cbrun-tracking-"))
    pid = _child()
    child = _clock(((~pid) << 3) | 2) if pid else 0.0  # Linux's CPUCLOCK_SCHED of a process
    with open(path, "a") as marks:
        marks.write(f"{time.monotonic()} {sitecustomize.HOOKS[0]} {threads} {child} "
                    f"{sitecustomize.HOOKS[1]}\\n")
'''

# Put on both sides' path as sitecustomize: sums the wall seconds the training thread spends
# in the tracking callback's per-batch and per-epoch hooks, and its processor seconds there
# (a run's cbrun is unchanged; an untracked run's hooks return at once).
PROBE = '''import importlib.abc, importlib.util, sys, time

HOOKS = [0.0, 0.0]  # wall seconds, and the training thread's processor seconds


def _timed(cls, name):
    inner = getattr(cls, name)

    def call(*args, **kwargs):
        start, used = time.perf_counter(), time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            HOOKS[0] += time.perf_counter() - start
            HOOKS[1] += time.thread_time() - used
    setattr(cls, name, call)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "cbrun.engine.tracking":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            for hook in ("on_train_batch_end", "on_epoch_end"):
                _timed(module.TrackingCallback, hook)
        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Finder())
'''


def config(epochs: int, marks: Path, patience: int = 5) -> dict:
    return {
        "name": "digits-tracking", "seed": 42,
        "data": {"source": "digits", "validation_split": 0.2, "batch_size": 32},
        "model": {"input_shape": [64], "layers": [
            {"type": "Rescaling", "scale": 0.0625},
            {"type": "Dense", "units": 128, "activation": "relu"},
            {"type": "Dropout", "rate": 0.2},
            {"type": "Dense", "units": 10, "activation": "softmax"}]},
        "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.001},
                    "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"epochs": epochs},
        "callbacks": [
            {"type": "EarlyStopping", "monitor": "val_loss", "patience": patience,
             "restore_best_weights": True},
            {"type": "ModelCheckpoint", "filepath": "checkpoints/best.keras",
             "monitor": "val_loss", "save_best_only": True},
            {"type": "CSVLogger", "filename": "log.csv"},
            {"type": "TensorBoard", "log_dir": "tensorboard"},
            {"type": "ReduceLROnPlateau", "monitor": "val_loss", "factor": 0.5,
             "patience": 1},
            {"type": "LambdaCallback", "on_epoch_end": "bench_marks:mark",
             "params": {"path": str(marks)}},
        ],
    }


STORES = {"sqlite": ("fresh SQLite store", lambda folder: f"sqlite:///{folder / 'mlflow.db'}"),
          "file": ("fresh folder store", lambda folder: f"file:{folder / 'mlruns'}"),
          # One store every run of the bench goes to, made before the first: the usual case
          # after a project's first run.
          "existing": ("existing SQLite store",
                       lambda folder: f"sqlite:///{folder.parent / 'shared.db'}")}


def _make_store(scratch: Path) -> None:
    code = ("import sys; from mlflow import MlflowClient; "
            "MlflowClient(tracking_uri=sys.argv[1]).search_experiments()")
    subprocess.run([sys.executable, "-c", code, f"sqlite:///{scratch / 'shared.db'}"],
                   check=True, capture_output=True)


@dataclass
class Run:
    seconds: float  # the whole process
    cpu: float  # its processor seconds (user + system), the tracking process's included
    # At each epoch's end: (when, the tracking hooks' seconds so far, the tracking threads'
    # processor seconds so far, the tracking process's processor seconds so far, the
    # hooks' processor seconds so far).
    marks: list[tuple[float, ...]]

    def steady(self) -> float:
        """The median epoch after the first."""
        return statistics.median(b[0] - a[0] for a, b in itertools.pairwise(self.marks))

    def span(self) -> tuple[int, int]:
        """The marks that bound the steady epochs the work is counted over: after the first
        quarter of the epochs, from the epoch end that follows one of the tracking process's
        sends to the one that follows its last send, so that the span holds whole cycles of
        sending (an SQLite store's send is ~15-40 ms of processor time, every few seconds:
        a span cut anywhere would count one more or one fewer). Without two such sends, the
        first quarter's end to the last epoch's. Left out before the span: what a tracked run
        does once, at its start (run.json written with the MLflow run's id at an epoch's end;
        the first sends, where MLflow's SQL statements are compiled and the run looked up the
        first time), which the run's part of the goal counts."""
        quarter, last = max(1, (len(self.marks) - 1) // 4), len(self.marks) - 1
        sends = [i for i in range(quarter + 1, last + 1)
                 if self.marks[i][3] - self.marks[i - 1][3] > SEND_SECONDS]
        return (sends[0], sends[-1]) if len(sends) >= 2 else (quarter, last)

    def work(self) -> tuple[float, ...]:
        """Per steady epoch (`span`): the training thread's seconds in the tracking hooks,
        the processor seconds of the training process's tracking threads and of the
        tracking process, and the hooks' processor seconds."""
        first, last = self.span()
        return tuple((self.marks[last][i] - self.marks[first][i]) / (last - first)
                     for i in (1, 2, 3, 4))

    def epochs(self) -> int:
        first, last = self.span()
        return last - first


def _one(folder: Path, epochs: int, store: str | None, patience: int = 5) -> Run:
    folder.mkdir(parents=True)
    (folder / "bench_marks.py").write_text(MARKS)
    (folder / "probe").mkdir()
    (folder / "probe" / "sitecustomize.py").write_text(PROBE)
    marks = folder / "marks.txt"
    cfg = config(epochs, marks, patience)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(folder / "probe"),
                                          os.environ.get("PYTHONPATH", "")])}
    if store is not None:
        cfg["tracking"] = {"mlflow": {"tracking_uri": STORES[store][1](folder),
                                      "experiment": "bench"}}
        if store == "file":
            env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "cbrun", "train", str(path), "--runs-dir",
                             str(folder / "runs"), "--quiet"], env=env, cwd=folder,
                            capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (now.ru_utime - used.ru_utime) + (now.ru_stime - used.ru_stime)
    if result.returncode != 0 or "warning: MLflow" in result.stderr:
        raise RuntimeError(f"the {store or 'untracked'} run failed:\n{result.stderr[-2000:]}")
    rows = [tuple(float(x) for x in line.split()) for line in marks.read_text().splitlines()]
    return Run(seconds, cpu, rows)


def _rounds(scratch: Path, repeats: int, epochs: int, sides: list[str | None]
            ) -> dict[str | None, list[Run]]:
    """Each side's runs, the sides in turn, so that the machine's load falls on each alike."""
    runs: dict[str | None, list[Run]] = {side: [] for side in sides}
    for round_ in range(repeats):
        for side in sides:
            runs[side].append(_one(scratch / f"{epochs}-{round_}-{side}", epochs, side))
    return runs


def _paired(scratch: Path, repeats: int, epochs: int, stores: tuple[str, ...]
            ) -> tuple[list[Run], dict[str, list[Run]]]:
    """Untracked runs, and each store's, in the order U T T T U T T T ... U: every tracked
    run has an untracked one just before and just after its round (repeats + 1 of them)."""
    # EarlyStopping as patient as the run is long: the digits MLP's val_loss stops
    # improving by epoch ~30, and the span needs the sends of all the epochs asked for.
    base = [_one(scratch / f"{epochs}-u0", epochs, None, epochs)]
    runs: dict[str, list[Run]] = {store: [] for store in stores}
    for round_ in range(repeats):
        for store in stores:
            runs[store].append(_one(scratch / f"{epochs}-{round_}-{store}", epochs, store,
                                    epochs))
        base.append(_one(scratch / f"{epochs}-u{round_ + 1}", epochs, None, epochs))
    return base, runs


@dataclass
class Steady:
    """What tracking adds to a steady epoch, for one store, as a share of the untracked
    steady epoch: by wall-clock difference, each tracked run against the mean of the
    untracked runs either side of its round (its pair), and by the work tracking does."""
    base: float  # the untracked steady epoch: its pairs', weighted by the work's epochs
    epoch: float  # this store's, median over its runs
    pairs: list[float]  # each run's added share, against its bracketing untracked runs
    works: list[float]  # each run's tracking work a steady epoch, as a share
    # Seconds a steady epoch: the hooks (wall), the threads, the process, the hooks (cpu).
    parts: tuple[float, ...]

    @property
    def wall(self) -> float:
        return statistics.median(self.pairs)

    @property
    def work(self) -> float:
        """All the runs' tracking work over all their steady epochs, as a share."""
        return sum(self.parts[:3]) / self.base


def steady(base: list[Run], runs: list[Run]) -> Steady:
    pairs, works, parts, against = [], [], [], 0.0
    for round_, run in enumerate(runs):
        around = (base[round_].steady() + base[round_ + 1].steady()) / 2
        pairs.append(run.steady() / around - 1)
        works.append(sum(run.work()[:3]) / around)
        parts.append([x * run.epochs() for x in run.work()])
        against += around * run.epochs()
    epochs = sum(run.epochs() for run in runs)
    return Steady(against / epochs, statistics.median(run.steady() for run in runs), pairs,
                  works, tuple(sum(p[i] for p in parts) / epochs for i in range(4)))


def report(repeats: int = 3, epochs: int = 4,
           stores: tuple[str, ...] = ("sqlite", "existing", "file"),
           steady_epochs: int = STEADY_EPOCHS) -> str:
    sides = [None, *stores]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as scratch:
        if "existing" in stores:
            _make_store(Path(scratch))
        runs = _rounds(Path(scratch), repeats, epochs, sides)
        long = (_paired(Path(scratch), min(repeats, STEADY_ROUNDS), steady_epochs, stores)
                if steady_epochs > max(epochs, 2) else None)
    load_after = os.getloadavg()
    wall = {side: [r.seconds for r in runs[side]] for side in sides}
    cpu = {side: [r.cpu for r in runs[side]] for side in sides}
    short_epoch = {side: [r.steady() for r in runs[side]] for side in sides}
    base, base_epoch = statistics.median(wall[None]), statistics.median(short_epoch[None])
    base_cpu = statistics.median(cpu[None])
    lines = [
        (f"MLflow tracking: digits MLP, 5 callbacks, {epochs} epochs, whole `cbrun train` "
         f"processes, median of {repeats}"),
        (f"load average {' '.join(f'{x:.1f}' for x in load_before)} before, "
         f"{' '.join(f'{x:.1f}' for x in load_after)} after, on {os.cpu_count()} cores"),
        (f"  {'':22}{'run s':>8}{'added s':>10}{'epoch s':>10}{'added/epoch':>14}"
         f"{'cpu s':>8}{'added cpu':>11}"),
        f"  {'untracked':22}{base:8.2f}{'':>10}{base_epoch:10.3f}{'':>14}{base_cpu:8.2f}",
    ]
    added_runs = {}
    for side in stores:
        run, epoch = statistics.median(wall[side]), statistics.median(short_epoch[side])
        used = statistics.median(cpu[side])
        added_runs[side] = run - base
        lines.append(f"  {STORES[side][0]:22}{run:8.2f}{run - base:+10.2f}{epoch:10.3f}"
                     f"{epoch / base_epoch - 1:+13.1%}{used:8.2f}{used - base_cpu:+11.2f}")
    found = {side: steady(long[0], long[1][side]) for side in stores} if long else {}
    if long:
        lines += [
            (f"steady epoch: {steady_epochs}-epoch runs, epochs 2-{steady_epochs}, untracked "
             f"runs before, between and after the {min(repeats, STEADY_ROUNDS)} rounds of "
             "tracked ones"),
            (f"  {'':22}{'epoch s':>9}{'wall added, pairs':>26}{'tracking work':>24}"
             f"{'hooks (cpu)/threads/process ms':>33}"),
            f"  {'untracked':22}{statistics.median(r.steady() for r in long[0]):9.3f}",
        ]
        for side, s in found.items():
            lines.append(
                f"  {STORES[side][0]:22}{s.epoch:9.3f}"
                f"{f'{s.wall:+.1%} [{min(s.pairs):+.1%}, {max(s.pairs):+.1%}]':>26}"
                f"{f'{s.work:.2%} [{min(s.works):.2%}, {max(s.works):.2%}]':>24}"
                f"{f'{s.parts[0] * 1000:.2f} ({s.parts[3] * 1000:.2f})/{s.parts[1] * 1000:.2f}/{s.parts[2] * 1000:.2f}':>33}")
        lines += [
            ("  (wall added: each tracked run's steady epoch against the mean of the untracked "
            "runs either side of its round, median [min, max];"),
            ("   tracking work: the training thread's time in the tracking hooks plus the "
            "processor time of the training process's tracking threads and of the"),
            ("   tracking process, over all steady epochs, against the untracked steady epoch "
            "[per run]: the most that work can add to an epoch; the goal's epoch part is "
            "judged by it)"),
        ]
    verdicts = []
    for side in stores:
        if side in found:
            s = found[side]
            per_epoch, share = max(s.wall, 0.0) * s.base, s.work
            said = f"tracking work {share:.1%} an epoch, wall {s.wall:+.1%}"
        else:
            per_epoch = statistics.median(short_epoch[side]) - base_epoch
            share = per_epoch / base_epoch
            said = f"{share:+.1%} an epoch"
        fixed = added_runs[side] - epochs * max(per_epoch, 0.0)
        met = fixed <= GOAL_RUN_S and share <= GOAL_EPOCH_SHARE
        verdicts.append(f"{side} {'met' if met else 'NOT met'} ({fixed:+.2f} s a run, {said})")
    lines.append(f"goal <= {GOAL_RUN_S:g} s a run plus <= {GOAL_EPOCH_SHARE:.0%} an epoch: "
                 + "; ".join(verdicts))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steady-epochs", type=int, default=STEADY_EPOCHS,
                        help="epochs of the longer runs that measure the steady epoch "
                             "(0: none, the --epochs runs' epoch judged by wall clock)")
    parser.add_argument("--stores", default="sqlite,existing,file",
                        help="comma-separated: sqlite, existing, file")
    args = parser.parse_args()
    stores = tuple(s for s in args.stores.split(",") if s)
    unknown = [s for s in stores if s not in STORES]
    if unknown:
        parser.error(f"unknown store {unknown[0]!r}; known: {', '.join(STORES)}")
    print(report(args.repeats, args.epochs, stores, args.steady_epochs))


if __name__ == "__main__":
    main()
