"""cbrun against the same training written by hand in Keras, as whole processes, and each
epoch against the floor: Keras's bare train step on this machine.

    make bench      # or: .venv/bin/python bench/bench_whole.py [--repeats 3] [--only NAME...]
                    #     [--variants] [--list]

The workloads (`--list` prints them): issue 13's digits MLP (30 epochs, EarlyStopping that
never fires, best-only ModelCheckpoint, CSVLogger, TensorBoard with histograms,
ReduceLROnPlateau) and compute-bound wide MLP (16384 x 512 float32, Dense 1024-1024-10,
batch 256, 3 epochs, CSVLogger only); issue 28's untuned small config (the digits MLP with
the callbacks a user writes without tuning for cbrun: EarlyStopping restoring the best
weights, a checkpoint at every improvement, CSVLogger, TensorBoard, ReduceLROnPlateau with
patience 1, so the rate changes often), a graph model (two inputs, two branches added, a
residual block) and a streamed folder of small PNGs. `--variants` adds the untuned config's
variations (a checkpoint every epoch, weights only, EarlyStopping that stops early).

Each round runs, for every workload, one `cbrun train` (through bench/fit_timeline.py,
which marks the hooks) and one hand-written script (bench/hand_keras.py, same model,
callbacks and epochs), in turn, so the machine's load hits both alike; then one process
that times the floor of every workload (bench/hand_keras.py --floor). Prints medians: the
whole process, its processor time (user + system of every thread: a busy machine's waits for
a core lengthen the wall clock, far less this) and its breakdown (import, build: everything between the import and `fit`,
first epoch, steady epochs, cbrun's own work per epoch, the time after the last epoch
inside `fit`, after `fit`), each steady epoch over the floor, the load average, and each
goal of issues 13 and 28 next to its figure. The wide goal's figure is paired: one process
per round times the floor, then `cbrun train` of the wide config, then the floor again
(bench/floor_pair.py), and the median of cbrun's epoch over the floors around it is the
figure.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
DIGITS_NPZ = REPO / "cbrun" / "datasets" / "digits.npz"
KERAS_CALLBACKS = {"EarlyStopping", "ModelCheckpoint", "CSVLogger", "TensorBoard",
                   "ReduceLROnPlateau", "Marks"}
MARK = re.compile(r"^\[\s*([\d.]+)\] (.+?)(?: ([\d.]+)s)?$")
FLOOR_GOAL = 1.1  # issue 28: the compute-bound workload's epoch over the floor
FLOOR_PAIR_EPOCHS = 5  # of each side of the paired measurement: 4 steady epochs


@dataclass
class Workload:
    name: str
    about: str
    model: str  # hand_keras.model_for's kind
    epochs: int
    batch_size: int
    callbacks: list[dict]  # the same list for cbrun's config and the hand-written script
    validation_split: float = 0.2
    goal: float | None = None  # cbrun / Keras, whole processes
    floor_goal: float | None = None
    variant: bool = False  # only with --variants (or named by --only)
    cbrun_data: dict = field(default_factory=dict)
    cbrun_model: dict = field(default_factory=dict)


DIGITS_LAYERS = {"input_shape": [64], "layers": [
    {"type": "Rescaling", "scale": 0.0625},
    {"type": "Dense", "units": 128, "activation": "relu"},
    {"type": "Dropout", "rate": 0.2},
    {"type": "Dense", "units": 10, "activation": "softmax"}]}
GRAPH = {
    "inputs": {"pixels": {"shape": [64]}, "extra": {"shape": [16]}},
    "layers": [
        {"name": "scaled", "type": "Rescaling", "scale": 0.0625, "inputs": "pixels"},
        {"name": "a", "type": "Dense", "units": 128, "activation": "relu", "inputs": "scaled"},
        {"name": "b", "type": "Dense", "units": 128, "activation": "relu", "inputs": "extra"},
        {"name": "joined", "type": "Add", "inputs": ["a", "b"]},
        {"name": "hidden", "type": "Dense", "units": 128, "activation": "relu",
         "inputs": "joined"},
        {"name": "residual", "type": "Add", "inputs": ["joined", "hidden"]},
        {"name": "digit", "type": "Dense", "units": 10, "activation": "softmax",
         "inputs": "residual"}],
    "outputs": ["digit"]}
IMAGES_MODEL = {"input_shape": [32, 32, 3], "layers": [
    {"type": "Rescaling", "scale": 1 / 255},
    {"type": "Conv2D", "filters": 16, "kernel_size": 3, "activation": "relu"},
    {"type": "MaxPooling2D"},
    {"type": "Conv2D", "filters": 32, "kernel_size": 3, "activation": "relu"},
    {"type": "GlobalAveragePooling2D"},
    {"type": "Dense", "units": 3, "activation": "softmax"}]}


def untuned(checkpoint: dict, stopping: dict) -> list[dict]:
    return [{"type": "EarlyStopping", "monitor": "val_loss", **stopping},
            {"type": "ModelCheckpoint", "monitor": "val_loss", **checkpoint},
            {"type": "CSVLogger", "filename": "log.csv"},
            {"type": "TensorBoard", "log_dir": "tensorboard"},
            {"type": "ReduceLROnPlateau", "monitor": "val_loss", "factor": 0.5, "patience": 1}]


BEST = {"filepath": "checkpoints/best.keras", "save_best_only": True}
RESTORE = {"patience": 5, "restore_best_weights": True}
WORKLOADS = [
    Workload("digits", "issue 13's digits MLP, 30 epochs, five callbacks", "digits", 30, 32, [
        {"type": "EarlyStopping", "monitor": "val_loss", "patience": 1000,
         "restore_best_weights": True},
        {"type": "ModelCheckpoint", "filepath": "checkpoints/ep{epoch:03d}-val_loss{val_loss:.3f}"
         ".keras", "monitor": "val_loss", "save_best_only": True},
        {"type": "CSVLogger", "filename": "log.csv"},
        {"type": "TensorBoard", "log_dir": "tensorboard", "histogram_freq": 1},
        {"type": "ReduceLROnPlateau", "monitor": "val_loss", "factor": 0.5, "patience": 2}],
        goal=0.6),
    Workload("wide", "compute-bound MLP, 16384 x 512, Dense 1024-1024-10, 3 epochs", "wide", 3,
             256, [{"type": "CSVLogger", "filename": "log.csv"}], validation_split=0.0,
             goal=0.7, floor_goal=FLOOR_GOAL),
    Workload("untuned", "digits MLP, 30 epochs, checkpoint at every improvement, "
             "restore_best_weights, LR patience 1", "digits", 30, 32, untuned(BEST, RESTORE),
             goal=0.6),
    Workload("graph", "two inputs, two branches added, a residual block; 4096 rows, 10 epochs",
             "graph", 10, 32, [{"type": "CSVLogger", "filename": "log.csv"},
                               {"type": "ModelCheckpoint", "filepath": "checkpoints/best.keras",
                                "monitor": "val_loss", "save_best_only": True}]),
    Workload("images", "a folder of 600 PNGs 32x32 in 3 classes, streamed; small convnet, "
             "5 epochs", "images", 5, 32, [{"type": "CSVLogger", "filename": "log.csv"}]),
    Workload("untuned-every", "untuned, a checkpoint every epoch", "digits", 30, 32,
             untuned({"filepath": "checkpoints/ep{epoch:03d}.keras"}, RESTORE), variant=True),
    Workload("untuned-weights", "untuned, weights only at every improvement", "digits", 30, 32,
             untuned({"filepath": "checkpoints/best.weights.h5", "save_best_only": True,
                      "save_weights_only": True}, RESTORE), variant=True),
    Workload("untuned-weights-every", "untuned, weights only every epoch", "digits", 30, 32,
             untuned({"filepath": "checkpoints/ep{epoch:03d}.weights.h5",
                      "save_weights_only": True}, RESTORE), variant=True),
    Workload("untuned-stop", "untuned, EarlyStopping that stops early (patience 2, "
             "min_delta 0.01)", "digits", 30, 32,
             untuned(BEST, {"patience": 2, "min_delta": 0.01, "restore_best_weights": True}),
             variant=True),
]


def write_data(root: Path, needed: set[str]) -> dict[str, Path]:
    """The data each model reads, made by the bench: {model kind: npz or image folder}."""
    rng = np.random.default_rng(0)
    out = {"digits": DIGITS_NPZ}
    if "wide" in needed:
        out["wide"] = root / "wide.npz"
        np.savez(out["wide"], x=rng.normal(size=(16384, 512)).astype("float32"),
                 y=rng.integers(0, 10, size=16384).astype("int32"))
    if "graph" in needed:
        pixels = rng.integers(0, 17, size=(4096, 64)).astype("float32")
        extra = rng.normal(size=(4096, 16)).astype("float32")
        score = pixels @ rng.normal(size=(64, 10)) / 16 + extra @ rng.normal(size=(16, 10))
        out["graph"] = root / "graph.npz"
        np.savez(out["graph"], pixels=pixels, extra=extra,
                 y=score.argmax(axis=1).astype("int32"))
    if "images" in needed:
        out["images"] = root / "shapes"
        write_pngs(out["images"], rng)
    return out


def write_pngs(folder: Path, rng, per_class: int = 200, size: int = 32) -> None:
    """Three classes told apart by colour, with noise: a PNG each, as a user's folder."""
    import zlib

    def png(pixels: np.ndarray) -> bytes:
        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return (len(data).to_bytes(4, "big") + body
                    + zlib.crc32(body).to_bytes(4, "big"))
        height, width, _ = pixels.shape
        header = (width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0]))
        raw = b"".join(b"\x00" + row.tobytes() for row in pixels)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

    for index, name in enumerate(("red", "green", "blue")):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 120, size=(size, size, 3))
            pixels[..., index] += 120
            (folder / name / f"{i:04d}.png").write_bytes(png(pixels.astype(np.uint8)))


def cbrun_config(work: Workload, data: Path) -> dict:
    if work.model == "images":
        source = {"source": "images", "path": str(data), "image_size": [32, 32],
                  "color_mode": "rgb"}
    elif work.model == "graph":
        source = {"source": "npz", "path": str(data),
                  "x": {"pixels": "pixels", "extra": "extra"}, "y": "y"}
    elif work.model == "digits":
        source = {"source": "digits"}
    else:
        source = {"source": "npz", "path": str(data)}
    if work.validation_split:
        source["validation_split"] = work.validation_split
    source["batch_size"] = work.batch_size
    model = {"digits": DIGITS_LAYERS, "graph": GRAPH, "images": IMAGES_MODEL}.get(
        work.model, {"input_shape": [512], "layers": [
            {"type": "Dense", "units": 1024, "activation": "relu"},
            {"type": "Dense", "units": 1024, "activation": "relu"},
            {"type": "Dense", "units": 10, "activation": "softmax"}]})
    optimizer = "adam" if work.model == "wide" else {"type": "Adam", "learning_rate": 0.001}
    compile_ = {"optimizer": optimizer, "loss": "sparse_categorical_crossentropy"}
    if work.model != "wide":
        compile_["metrics"] = ["accuracy"]
    return {"name": work.name, "seed": 42, "data": source, "model": model,
            "compile": compile_, "fit": {"epochs": work.epochs}, "callbacks": work.callbacks}


def configs(root: Path, epochs: dict[str, int]) -> dict[str, tuple[Path, Path]]:
    """{workload: (cbrun config, its data)} for the named workloads and their epochs, written
    under `root` (bench/gpu_check.py trains them on a GPU)."""
    works = {w.name: w for w in WORKLOADS if w.name in epochs}
    data = write_data(root, {w.model for w in works.values()})
    out = {}
    for name, work in works.items():
        config = cbrun_config(work, data[work.model])
        config["fit"]["epochs"] = epochs[name]
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        out[name] = (path, data[work.model])
    return out


def wide_files(root: Path, epochs: int) -> tuple[Path, Path]:
    """The wide workload's cbrun config and hand_keras spec (JSON) under root: what the
    floor's own benches (floor_pair.py, floor_parts.py) run."""
    config, data = configs(root, {"wide": epochs})["wide"]
    wide = next(w for w in WORKLOADS if w.name == "wide")
    spec = root / "wide.json"
    spec.write_text(json.dumps(hand_spec(wide, data)))
    return config, spec


def hand_spec(work: Workload, data: Path) -> dict:
    return {"name": work.name, "model": work.model, "data": str(data), "epochs": work.epochs,
            "batch_size": work.batch_size, "validation_split": work.validation_split,
            "seed": 42, "callbacks": work.callbacks}


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
            "slowest steady": max(epochs) if epochs else float("nan"),
            "epochs": len(ends),
            "cbrun per epoch": own / len(ends),
            "after last epoch": at["fit returned"] - train_end,
            "after fit": total - at["fit returned"]}


def processor_seconds() -> float:
    """User and system time of this script's children that have ended."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run(command: list[str], repo: Path = REPO) -> tuple[float, str, str]:
    """(wall seconds, stderr, stdout); the process's processor seconds in LAST_CPU."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(repo)}
    start, cpu = time.perf_counter(), processor_seconds()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900,
                          check=False)
    total = time.perf_counter() - start
    LAST_CPU[0] = processor_seconds() - cpu
    if proc.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    return total, proc.stderr, proc.stdout


# A busy machine makes a process wait for a core: its wall clock grows, its processor time
# (user + system, every thread) far less. Printed beside the wall-clock figures.
LAST_CPU = [0.0]


def other_reports(repeats: int) -> list[str]:
    """=== issue 28: the other benches of `make bench`, called here by the lead ===
    bench/bench_tracking.py (MLflow's added cost per run) and bench/bench_sweep.py (a
    sweep's time per trial over its training), each `report(repeats: int) -> str`."""
    # Imported here, from this script's folder: each is also a script of its own.
    import bench_sweep
    import bench_tracking

    return [bench_tracking.report(repeats), bench_sweep.report(repeats)]


def verdict(value: float, goal: float | None) -> str:
    if goal is None:
        return ""
    return f"  (goal <= {goal}: {'holds' if value <= goal else 'NOT met'})"


def main() -> None:
    import floor_pair  # this script's folder: the wide goal's paired measurement

    names = [w.name for w in WORKLOADS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME",
                        help=f"these workloads only: {', '.join(names)}")
    parser.add_argument("--variants", action="store_true",
                        help="add the untuned config's variations")
    parser.add_argument("--no-others", action="store_true",
                        help="leave out the tracking and sweep benches")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also time the cbrun of another checkout (e.g. `git archive` of "
                             "an older commit), in turn with the two others")
    parser.add_argument("--list", action="store_true", help="print the workloads and exit")
    args = parser.parse_args()
    if args.list:
        for work in WORKLOADS:
            print(f"{work.name:<22} {work.about}{' (--variants)' if work.variant else ''}")
        return
    chosen = [w for w in WORKLOADS if (w.name in args.only if args.only
                                       else args.variants or not w.variant)]
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    floors: dict[str, list[float]] = {}
    pairs: list[dict] = []
    spe: dict[str, int] = {}
    loads: list[float] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = write_data(root, {w.model for w in chosen})
        files = {}
        for work in chosen:
            config, spec = root / f"{work.name}.yaml", root / f"{work.name}.json"
            config.write_text(yaml.safe_dump(cbrun_config(work, data[work.model]),
                                             sort_keys=False))
            spec.write_text(json.dumps(hand_spec(work, data[work.model])))
            files[work.name] = (config, spec)
        # One floor per model and data (the untuned variants share the digits one).
        floor_of = {w.name: w.model for w in chosen}
        floor_specs = {w.model: files[w.name][1] for w in chosen}
        if "wide" in files:
            pair_config = root / "wide-pair.yaml"
            config = yaml.safe_load(files["wide"][0].read_text())
            config["fit"]["epochs"] = FLOOR_PAIR_EPOCHS
            pair_config.write_text(yaml.safe_dump(config, sort_keys=False))
        for i in range(args.repeats):
            for work in chosen:
                config, spec = files[work.name]
                for side in ("cbrun", "keras", *(["before"] if args.before else [])):
                    loads.append(os.getloadavg()[0])
                    out = root / f"{work.name}-{side}-{i}"
                    if side != "keras":
                        total, err, _ = run([sys.executable, str(BENCH / "fit_timeline.py"),
                                             str(config), "--runs-dir", str(out), "-q"],
                                            args.before if side == "before" else REPO)
                        record = json.loads(next(out.glob("*/run.json")).read_text())
                        spe.setdefault(work.name, {}).setdefault(side, []).append(
                            record["steps_per_execution"])
                    else:
                        total, err, _ = run([sys.executable, str(BENCH / "hand_keras.py"),
                                             str(spec), str(out)])
                    results.setdefault(work.name, {}).setdefault(side, []).append(
                        {**timeline(err, total), "processor": LAST_CPU[0]})
                    print(f"round {i + 1}/{args.repeats} {work.name} {side}: {total:.2f} s "
                          f"(load {loads[-1]:.1f})", file=sys.stderr, flush=True)
            loads.append(os.getloadavg()[0])
            _, _, out = run([sys.executable, str(BENCH / "hand_keras.py"), "--floor",
                             *map(str, floor_specs.values())])
            for model, measured in json.loads(out.splitlines()[-1]).items():
                floors.setdefault(model, []).append(measured["epoch"])
            if "wide" in files:
                # The wide goal's figure: the floor, cbrun, the floor again in one process,
                # each epoch timed alike (bench/floor_pair.py).
                pairs.append(floor_pair.pair_round(pair_config, files["wide"][1],
                                                   root / f"pair-{i}", FLOOR_PAIR_EPOCHS))
                print(f"round {i + 1}/{args.repeats} wide paired: cbrun / floor "
                      f"{floor_pair.ratios(pairs[-1:])[0]:.3f} (load {pairs[-1]['load']:.1f})",
                      file=sys.stderr, flush=True)
    print(f"median of {args.repeats}, whole processes in turn; load average "
          f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores; "
          f"{time.perf_counter() - started:.0f} s")
    keys = ["total", "processor", "import", "build", "first epoch", "steady epoch", "slowest steady",
            "cbrun per epoch", "after last epoch", "after fit"]
    summary = []
    for work in chosen:
        sides = results[work.name]
        med = {side: {k: statistics.median(r[k] for r in rows) for k in [*keys, "epochs"]}
               for side, rows in sides.items()}
        ratio = med["cbrun"]["total"] / med["keras"]["total"]
        floor = statistics.median(floors[floor_of[work.name]])
        over = med["cbrun"]["steady epoch"] / floor
        print(f"\n{work.name}: {work.about}")
        print(f"  cbrun / Keras = {ratio:.2f}{verdict(ratio, work.goal)}; steps_per_execution "
              f"auto chose {spe[work.name]['cbrun']}; epochs run: cbrun "
              f"{med['cbrun']['epochs']:.0f}, Keras {med['keras']['epochs']:.0f}")
        print(f"  processor time (user + system): cbrun / Keras = "
              f"{med['cbrun']['processor'] / med['keras']['processor']:.2f}")
        if "before" in med:
            print(f"  before ({args.before}): cbrun / Keras = "
                  f"{med['before']['total'] / med['keras']['total']:.2f}; auto chose "
                  f"{spe[work.name]['before']}")
        paired = None
        if work.name == "wide" and pairs:
            each = floor_pair.ratios(pairs)
            paired = statistics.median(each)
            over_cpu = statistics.median(floor_pair.ratios(pairs, "cpu"))
        print(f"  steady epoch over the floor ({floor:.3f} s, its own process): cbrun "
              f"{over:.2f}{'' if paired else verdict(over, work.floor_goal)}, Keras "
              f"{med['keras']['steady epoch'] / floor:.2f}")
        if paired is not None:
            print(f"  paired (floor, cbrun, floor in one process, epoch end to end): cbrun "
                  f"{paired:.2f}{verdict(paired, work.floor_goal)}; rounds "
                  f"{', '.join(f'{v:.2f}' for v in each)}; processor time {over_cpu:.2f}")
            over = paired
        sides = ["cbrun", "keras", *(["before"] if "before" in med else [])]
        print(f"  {'seconds':<18}" + "".join(f"{side:>9}" for side in sides))
        for k in keys:
            print(f"  {k:<18}" + "".join(
                f"{med[side][k]:>9.3f}" if k == "cbrun per epoch" and side != "keras" else
                f"{'':>9}" if k == "cbrun per epoch" else f"{med[side][k]:>9.2f}"
                for side in sides))
        summary.append((work, ratio, over))
    print("\nsummary (cbrun / Keras, whole processes; steady epoch / floor)")
    for work, ratio, over in summary:
        print(f"  {work.name:<22}{ratio:>6.2f}{verdict(ratio, work.goal):<26}"
              f"{over:>6.2f}{verdict(over, work.floor_goal)}")
    if not args.no_others and not args.only:
        for text in other_reports(args.repeats):
            print(f"\n{text}")


if __name__ == "__main__":
    main()
