"""`cbrun benchmark RUN`: the run's model as each format serves it, on this machine: file
size, latency of one sample and of one batch, and the validation metric.

Every format is exported as `cbrun export` exports it (the same `_write`, the same
quantization settings), loaded by its own runtime, timed on samples of the run's data, and
scored on the whole validation split with the batches the Keras model is scored on
(engine/quality.py), so the metric column differs only by what each format computes.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cbrun.engine.quality import Score
from cbrun.errors import RunError, UsageError
from cbrun.run.checkpoints import Checkpoint
from cbrun.run.exports import BENCHMARK_ROWS, DEFAULT_CALIBRATION, skipped_rows
from cbrun.run.handle import OpenRun

WARMUP = 3  # calls before timing: tracing, delegate set-up, allocation


@dataclass
class Row:
    name: str
    path: Path | None = None
    size: int | None = None  # bytes
    ms_one: float | None = None  # median milliseconds of a call on one sample
    ms_batch: float | None = None  # ... on one batch of the run's batch size
    scores: list[Score] = field(default_factory=list)
    skipped: str | None = None  # why it was not measured (an extra not installed)
    error: str | None = None  # why it failed (a format that cannot carry the model)

    def to_json(self) -> dict[str, Any]:
        return {"format": self.name, "path": str(self.path) if self.path else None,
                "bytes": self.size, "ms_per_sample_batch_1": self.ms_one,
                "ms_per_batch": self.ms_batch,
                "metrics": {s.output: {"metric": s.metric, "value": s.value}
                            for s in self.scores},
                "skipped": self.skipped, "error": self.error}


@dataclass
class Benchmark:
    run_dir: Path
    checkpoint: str
    split: str
    samples: int
    batch_size: int
    repeats: int
    device: str
    rows: list[Row]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "checkpoint": self.checkpoint,
                "split": self.split, "samples": self.samples, "batch_size": self.batch_size,
                "repeats": self.repeats, "warmup": WARMUP, "device": self.device,
                "rows": [row.to_json() for row in self.rows], "notes": self.notes}


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def median_ms(call: Callable[[], Any], repeats: int) -> float:
    """The median of `repeats` timed calls after WARMUP untimed ones, in milliseconds."""
    for _ in range(WARMUP):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def benchmark_run(run: OpenRun, checkpoint: Checkpoint, names: list[str], *, repeats: int,
                  keep: Path | None, show: bool = False,
                  progress: Callable[[str], None] = lambda _: None) -> Benchmark:
    """Measure each row of `names` (keys of BENCHMARK_ROWS) in order. Exports go into `keep`, else
    into a temporary folder removed at the end."""
    import tensorflow as tf

    from cbrun.engine import export as ex
    from cbrun.engine.exportcheck import load_artifact, paired
    from cbrun.engine.quality import (
        keras_predictor,
        output_names,
        padded,
        score,
        scoring_split,
    )
    from cbrun.engine.runmodel import load_run_model
    from cbrun.engine.sources import data_for_run

    model = load_run_model(run, checkpoint, compile=False)
    notes = []
    mixed = ex._mixed_policy(model)
    if mixed:
        model = ex._float32_copy(model)
        notes.append(f"the run computes in {mixed}: every format, the Keras model too, runs "
                     f"a float32 copy with the same weights")
    splits, _ = data_for_run(run)
    split_name, split = scoring_split(splits)
    batch_size = run.config.data.batch_size
    one = ex.sample_inputs(split, model, 1)
    batch = ex.sample_inputs(split, model, batch_size)
    batch = padded(batch, batch_size)  # a split smaller than a batch still gives one
    outputs = output_names(model)
    skipped = skipped_rows(names)
    rows = [Row(name, skipped=skipped.get(name)) for name in names]
    predictors: dict[str, Callable] = {}
    folder = keep if keep is not None else Path(tempfile.mkdtemp(prefix="cbrun-benchmark-"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for row in rows:
            if row.skipped:
                continue
            progress(row.name)
            fmt, quantize, file_name = BENCHMARK_ROWS[row.name]
            try:
                if fmt is None:
                    row.path = checkpoint.path
                    row.size = size_of(checkpoint.path)
                    predict = keras_predictor(model)
                    timed_one = timed_batch = predict
                else:
                    row.path = folder / file_name
                    _export(ex, model, splits.train, run, fmt, quantize, row.path, show)
                    row.size = size_of(row.path)
                    # One runtime per shape: LiteRT resizes its tensors when the batch
                    # size changes, which is not what a server running one size pays.
                    loaded_one = load_artifact(fmt, row.path, show)
                    loaded = load_artifact(fmt, row.path, show)

                    def predict(x, loaded=loaded):
                        return paired(outputs, loaded(x))

                    timed_one, timed_batch = loaded_one, loaded
                row.ms_one = median_ms(lambda f=timed_one: f(one), repeats)
                row.ms_batch = median_ms(lambda f=timed_batch: f(batch), repeats)
                predictors[row.name] = predict
            except (RunError, UsageError) as exc:
                row.error = str(exc)
            except Exception as exc:  # noqa: BLE001 - a format that fails is a result
                line = str(exc).strip().splitlines()
                row.error = f"{type(exc).__name__}: {line[0] if line else ''}"
        progress("the validation metric")
        scored, samples = score(run, model, split, predictors, batch_size) if predictors \
            else ({}, 0)
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    for row in rows:
        row.scores = scored.get(row.name, [])
        if keep is None and row.path is not None and row.name != "keras":
            row.path = Path(row.path.name)  # the file is gone: its name says what it was
    gpus = tf.config.list_logical_devices("GPU")
    device = f"{len(gpus)} GPU{'s' * (len(gpus) > 1)}" if gpus else \
        f"CPU ({os.cpu_count()} cores)"
    return Benchmark(run.run_dir, checkpoint.label, split_name, samples, batch_size, repeats,
                     device, rows, notes)


def _export(ex: Any, model: Any, train: Any, run: OpenRun, fmt: str, quantize: str | None,
            target: Path, show: bool) -> None:
    settings = None
    if quantize:
        representative = (ex.calibration(train, model, DEFAULT_CALIBRATION, run.config.seed)[0]
                          if quantize == "int8" else None)
        settings = ex.converter_settings(quantize, representative)
    if fmt == "onnx":
        ex._captured_tensors_as_constants(model)
    ex._write(model, fmt, target, settings, show)
