"""What the compute-bound `wide` workload's steady epoch holds above the floor, one part at a
time: cbrun's epoch with one suspect removed, against Keras's bare-step floor, whole
processes in turn.

    python bench/floor_parts.py [--rounds 3] [--epochs 5] [VARIANT ...]

Each round runs the floor (bench/hand_keras.py's `floor`, in a process of its own) and then
one `cbrun train` of the wide config per variant, in turn. A variant patches this process's cbrun before the run (a
measurement, never a mode of cbrun):

    base       cbrun as it is
    whole      steps_per_execution = the whole epoch (64 batches per call) instead of `auto`
    speN       steps_per_execution = N
    nostate    no state captured or written at epoch ends
    nowrite    the state captured (the training thread's copy) but not written
    cached     the floor's input: batches made once, cached, no per-epoch order or gather
    bare       no callback but the StateKeeper (its epoch end is the mark) and the CSVLogger
    nogc       the garbage collector left off for the whole run

Prints, per variant: the median steady epoch (between two StateKeeper epoch ends, epoch 1
left out, as bench_whole.py measures it), the median from the first callback's epoch begin
to the last one's epoch end (as the floor is timed), the process's processor seconds per
steady epoch, the training thread's, and the load average.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# FLOOR_PARTS_PROFILE=1: the training thread's processor time by function over epochs 2-4,
# in OUT/main.prof (cProfile on time.thread_time).
PROFILE = None
if os.environ.get("FLOOR_PARTS_PROFILE"):
    import cProfile

    PROFILE = cProfile.Profile(time.thread_time)
VARIANTS = ("base", "whole", "nostate", "nowrite", "cached", "bare", "nogc")


def threads_cpu() -> dict[str, float]:
    """Processor seconds of each thread of this process so far, by thread name (Linux)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # the thread ended meanwhile
            continue
        name = f"{name}:{task.name}"
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _patch(variant: str) -> list[str]:
    """Apply `variant` to this process's cbrun; the extra `cbrun train` arguments."""
    if variant == "whole":
        return ["--set", "compile.steps_per_execution=64"]
    if variant.startswith("spe"):
        return ["--set", f"compile.steps_per_execution={variant[3:]}"]
    if variant in ("nostate", "nowrite"):
        from cbrun.engine.callbacks.keeper import StateKeeper
        from cbrun.state.writer import StateWriter

        if variant == "nostate":
            StateKeeper.on_epoch_end = lambda self, epoch, logs=None: None
        else:
            StateWriter.save = lambda self, run_dir, state, then: None
    if variant == "cached":
        import tensorflow as tf

        from cbrun.engine import data, session

        def cached(split, batch_size, seed, shuffle, steps, **_):
            batches = tf.data.Dataset.from_tensor_slices((split.x, split.y)).batch(batch_size)
            batches = batches.cache()
            list(batches)
            return batches, None

        session.train_dataset = data.train_dataset = cached
    if variant == "nogc":
        import gc

        from cbrun.engine import tfimport

        tfimport.collector_back = lambda: gc.disable()
        from cbrun.engine import session
        from cbrun.engine.callbacks import own

        session.collector_back = own.collector_back = tfimport.collector_back
    return []


def child(variant: str, config: str, out: str) -> None:
    if variant == "floor":
        import keras
    else:
        from cbrun.cli import main as cbrun_main
        from cbrun.engine.tfimport import import_tensorflow
        from cbrun.process import set_whole_process

        set_whole_process(True)
        import_tensorflow(training=True)
        import keras

        extra = _patch(variant)
    marks: list[dict] = []

    class First(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marks.append({"begin": time.perf_counter()})

    Path(out).mkdir(parents=True, exist_ok=True)

    class Last(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            marks[-1]["end"] = time.perf_counter()
            if variant == "floor":
                marks[-1].update(keeper=marks[-1]["end"], cpu=time.process_time(),
                                 thread=time.thread_time(), threads=threads_cpu())
            # `cbrun train` leaves without the interpreter's teardown: written as it goes.
            Path(out, "marks.json").write_text(json.dumps(marks))

    fit = keras.Model.fit

    def timed_fit(self, *args, **kwargs):
        callbacks = list(kwargs.get("callbacks") or [])
        if variant == "bare":
            callbacks = [c for c in callbacks if type(c).__name__ in (
                "StateKeeper", "CSVLogger", "EpochOrder")]
        for callback in callbacks:
            if type(callback).__name__ == "StateKeeper":
                hook = callback.on_epoch_end

                def keeper_end(epoch, logs=None, hook=hook):
                    hook(epoch, logs)
                    marks[-1]["keeper"] = time.perf_counter()
                    marks[-1]["cpu"] = time.process_time()
                    marks[-1]["thread"] = time.thread_time()
                    marks[-1]["threads"] = threads_cpu()
                    if PROFILE and epoch == 0:
                        PROFILE.enable()
                    elif PROFILE and epoch == 3:
                        PROFILE.disable()
                        PROFILE.dump_stats(str(Path(out, "main.prof")))

                callback.on_epoch_end = keeper_end
        kwargs["callbacks"] = [First(), *callbacks, Last()]
        return fit(self, *args, **kwargs)

    keras.Model.fit = timed_fit
    if variant == "floor":
        sys.path.insert(0, str(BENCH))
        import hand_keras

        result = hand_keras.floor(json.loads(Path(config).read_text()))
        Path(out, "floor.json").write_text(json.dumps(result))
        return
    sys.argv = ["cbrun", "train", config, "--runs-dir", out, "-q", *extra]
    cbrun_main()


def hand_keras_epochs() -> int:
    sys.path.insert(0, str(BENCH))
    import hand_keras

    return hand_keras.FLOOR_EPOCHS


def _median_gap(marks: list[dict], key: str) -> float:
    ends = [m[key] for m in marks]
    return statistics.median(b - a for a, b in itertools.pairwise(ends))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("variants", nargs="*", default=["base"])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sys.path.insert(0, str(BENCH))
    import bench_whole

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    rows: dict[str, list[dict]] = {v: [] for v in ["floor", *args.variants]}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config, spec = bench_whole.wide_files(root, args.epochs)
        for i in range(args.rounds):
            for variant, done in rows.items():
                load = os.getloadavg()[0]
                cpu = bench_whole.processor_seconds()
                start = time.perf_counter()
                out = root / f"{variant}-{i}"
                given = spec if variant == "floor" else config
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", variant, str(given), str(out)],
                    env=env, capture_output=True, text=True, check=False)
                marks = json.loads((out / "marks.json").read_text())
                if proc.returncode or len(marks) != (
                        hand_keras_epochs() if variant == "floor" else args.epochs):
                    sys.exit(f"{variant} failed:\n{proc.stderr[-3000:]}")
                steady = marks[1:]
                row = {"epoch": _median_gap(marks, "keeper"),
                       "inside": statistics.median(m["end"] - m["begin"] for m in steady),
                       "cpu": _median_gap(marks, "cpu"),
                       "thread": _median_gap(marks, "thread"),
                       "spe": json.loads((out / "floor.json").read_text())["steps"]
                       if variant == "floor" else
                       json.loads(next(out.glob("*/run.json")).read_text())[
                           "steps_per_execution"]}
                row.update(load=load, wall=time.perf_counter() - start,
                           process_cpu=bench_whole.processor_seconds() - cpu)
                done.append(row)
                print(f"round {i + 1} {variant}: " + " ".join(
                    f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in row.items()), file=sys.stderr, flush=True)
    floor = statistics.median(r["inside"] for r in rows["floor"])  # hand_keras's own figure
    loads = [r["load"] for rs in rows.values() for r in rs]
    print(f"wide, {args.epochs} epochs, median of {args.rounds} rounds in turn; load average "
          f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores")
    print(f"{'':<9}{'epoch s':>9}{'/ floor':>9}{'inside s':>10}{'cpu s':>8}{'main s':>8}"
          f"  spe")
    for variant, rs in rows.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "spe"}
        line = f"{variant:<9}{med['epoch']:>9.3f}{med['epoch'] / floor:>9.2f}"
        line += (f"{med['inside']:>10.3f}{med['cpu']:>8.3f}{med['thread']:>8.3f}  "
                 f"{[r['spe'] for r in rs]}")
        print(line)


if __name__ == "__main__":
    main()
