"""The `wide` workload's steady epoch against the floor, paired: in one process, the floor,
then `cbrun train` of the same config, then the floor again, each epoch timed the same way
on both sides.

    python bench/floor_pair.py [--rounds 3] [--epochs 5] [--floor-epochs 5]

Why paired: the floor and cbrun's epochs measured in different processes at different
moments (`make bench` until stop 34) carry the machine's drift between them (the floor
alone moved by 15-30% between rounds on a quiet machine), more than the 10% the goal
allows. Here each cbrun run is divided by the mean of the two floors around it, in the same
process (the same TensorFlow thread pools, the same allocator, seconds apart), and the
figure is the median of those per-round ratios, with their spread.

Timed alike: a callback placed first marks each epoch's begin, one placed last its end,
on both sides (cbrun's last callback is the StateKeeper, which saves the state). Two
figures per side, medians over the epochs after the first:
    end->end     between two epoch ends: everything an epoch costs, Keras's own work
                 between epochs included (what `make bench` calls the steady epoch)
    begin->end   from an epoch's begin to its end (how hand_keras.floor times the floor)
and the process's processor seconds (every thread) and the training thread's, end->end.

Also a library function, `measure(config, spec, epochs, floor_epochs, rounds)`, which
bench/bench_whole.py calls for the wide goal.
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


def _figures(marks: list[dict]) -> dict[str, float]:
    steady = marks[1:]

    def gap(key: str) -> float:
        return statistics.median(b[key] - a[key] for a, b in itertools.pairwise(marks))

    return {"end->end": gap("end"),
            "begin->end": statistics.median(m["end"] - m["begin"] for m in steady),
            "cpu": gap("cpu"), "thread": gap("thread"), "epochs": len(marks)}


def child(config: str, spec_path: str, out: str, floor_epochs: int) -> None:
    """One paired round, in this process: floor, cbrun, floor; JSON on stdout."""
    from cbrun import cli
    from cbrun.engine.tfimport import import_tensorflow
    from cbrun.process import set_whole_process

    # As the `cbrun` command runs (the collector held through the first epoch, TensorFlow's
    # objects frozen), but without its os._exit, so that the second floor can follow.
    set_whole_process(True)
    import_tensorflow(training=True)
    import keras

    sys.path.insert(0, str(BENCH))
    import hand_keras

    hand_keras.FLOOR_EPOCHS = floor_epochs
    marks: list[dict] = []

    class First(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marks.append({"begin": time.perf_counter()})

    class Last(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            marks[-1].update(end=time.perf_counter(), cpu=time.process_time(),
                             thread=time.thread_time())

    fit = keras.Model.fit

    def timed_fit(self, *args, **kwargs):
        kwargs["callbacks"] = [First(), *(kwargs.get("callbacks") or []), Last()]
        return fit(self, *args, **kwargs)

    keras.Model.fit = timed_fit
    spec = json.loads(Path(spec_path).read_text())
    result = {}
    for side in ("floor", "cbrun", "floor after"):
        marks.clear()
        if side == "cbrun":
            code = cli._run(["train", config, "--runs-dir", out, "-q"])
            if code:
                sys.exit(f"cbrun train exited {code}")
            record = json.loads(next(Path(out).glob("*/run.json")).read_text())
            spe = record["steps_per_execution"]
        else:
            spe = hand_keras.floor(spec)["steps"]
        result[side] = {**_figures(marks), "spe": spe}
    print(json.dumps(result))


def pair_round(config: Path, spec: Path, out: Path, floor_epochs: int,
               repo: Path = REPO) -> dict:
    """One paired round in a fresh process: {side: figures}, and `load`."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(repo)}
    load = os.getloadavg()[0]
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(config), str(spec), str(out),
         str(floor_epochs)], env=env, capture_output=True, text=True, timeout=900,
        check=False)
    if proc.returncode:
        sys.exit(f"floor_pair round failed:\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.splitlines()[-1]), "load": load}


def ratios(rounds: list[dict], key: str = "end->end") -> list[float]:
    """cbrun's steady epoch over the mean of the floors before and after it, per round."""
    return [r["cbrun"][key] / ((r["floor"][key] + r["floor after"][key]) / 2)
            for r in rounds]


def report(rounds: list[dict]) -> str:
    loads = [r["load"] for r in rounds]
    lines = [(f"wide, paired (floor, cbrun, floor in one process), {len(rounds)} rounds; "
             f"load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores"),
             (f"  {'':<13}{'end->end s':>11}{'begin->end s':>13}{'cpu s':>8}{'main s':>8}"
             f"  steps per call")]
    for side in ("floor", "cbrun", "floor after"):
        med = {k: statistics.median(r[side][k] for r in rounds)
               for k in ("end->end", "begin->end", "cpu", "thread")}
        lines.append(f"  {side:<13}{med['end->end']:>11.3f}{med['begin->end']:>13.3f}"
                     f"{med['cpu']:>8.3f}{med['thread']:>8.3f}  "
                     f"{[r[side]['spe'] for r in rounds]}")
    for key in ("end->end", "begin->end", "cpu"):
        each = ratios(rounds, key)
        lines.append(f"  cbrun / floor, {key:<11} median {statistics.median(each):.3f}  "
                     f"(rounds: {', '.join(f'{v:.3f}' for v in each)})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5, help="cbrun's epochs")
    parser.add_argument("--floor-epochs", type=int, default=5)
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also the cbrun of another checkout (e.g. `git archive` of an "
                             "older commit), its rounds alternated with this one's")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        config, spec, out, floor_epochs = args.child
        child(config, spec, out, int(floor_epochs))
        return
    import bench_whole

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config, spec = bench_whole.wide_files(root, args.epochs)
        rounds: dict[str, list[dict]] = {"now": [], **({"before": []} if args.before else {})}
        for i in range(args.rounds):
            for name, done in rounds.items():
                repo = args.before if name == "before" else REPO
                done.append(pair_round(config, spec, root / f"{name}-{i}", args.floor_epochs,
                                       repo))
                r = done[-1]
                print(f"round {i + 1} {name}: " + "  ".join(
                    f"{side} {r[side]['end->end']:.3f}" for side in ("floor", "cbrun",
                                                                      "floor after"))
                    + f"  main {r['cbrun']['thread']:.3f}  (load {r['load']:.1f})",
                    file=sys.stderr, flush=True)
    for name, done in rounds.items():
        print(f"{name}{f' ({args.before})' if name == 'before' else ''}:\n{report(done)}")


if __name__ == "__main__":
    main()
