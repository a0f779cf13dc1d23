"""`cbrun evaluate`: a run's model at a checkpoint on one of its splits, rebuilt as its
resolved.yaml declares them, or on a new file of the same kind (cbrun/engine/inputs.py).

The split is evaluated as `fit` evaluated validation data (same batches, file order), so
a checkpoint reproduces the val_* values log.csv holds for its epoch. For a classifier the
confusion matrix comes from the same data, predicted once more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cbrun.engine.data import eval_data, evaluate_split
from cbrun.engine.outputs import by_output, model_outputs, output_tasks
from cbrun.engine.runmodel import load_run_model
from cbrun.engine.sources import Split, data_for_run
from cbrun.errors import UsageError
from cbrun.run.checkpoints import Checkpoint
from cbrun.run.evaluation import Evaluation
from cbrun.run.handle import OpenRun


def choose_split(run: OpenRun, split: str | None, data: Path | None) -> tuple[Split, str, list[str]]:
    """(the split, what to call it, notes) for --split / --data; by default the test split,
    else the validation split."""
    if data is not None:
        from cbrun.engine.inputs import labelled

        found, notes = labelled(run, data)
        return found, str(data), notes
    splits, _ = data_for_run(run)
    named = splits.named()
    if split is None:
        split = "test" if "test" in named else "validation"
    if split not in named:
        has = [name for name in ("validation", "test") if name in named]
        raise UsageError(f"{run.run_dir} has no {split} split (its data config sets no "
                         f"{split}_split or {split}_path); "
                         + (f"use --split {has[0]}, or " if has else "")
                         + "give a labelled file of the run's kind with --data PATH")
    return named[split], f"the {split} split", []


def evaluate_run(run: OpenRun, checkpoint: Checkpoint, split: str | None = None,
                 data: Path | None = None) -> Evaluation:
    chosen, name, notes = choose_split(run, split, data)
    model = load_run_model(run, checkpoint)
    if data is not None:
        from cbrun.engine.inputs import check_fits

        check_fits(data.name, chosen, run, model)
    batch_size = run.config.data.batch_size
    metrics = evaluate_split(model, chosen, batch_size)
    result = Evaluation(run_dir=str(run.run_dir), checkpoint=checkpoint.label,
                        epoch=checkpoint.epoch, data=name, samples=_samples(chosen),
                        metrics={k: float(v) for k, v in _loss_first(metrics)}, notes=notes)
    result.baseline, result.baseline_predicts = _baseline(run, model, chosen)
    outputs = model_outputs(model)
    tasks = output_tasks(run.config, run.run_dir, outputs)
    if len(tasks) == 1 and tasks[0].classifies and chosen.dataset is None:
        inputs, kwargs = eval_data(chosen, batch_size)
        x = inputs[0] if isinstance(inputs, tuple) else inputs
        predicted = by_output(model.predict(x, batch_size=kwargs.get("batch_size"),
                                            verbose=0), [n for n, _ in outputs])[0]
        task = tasks[0]
        truth = task.label_ids(np.asarray(chosen.y))
        guess = task.class_ids(predicted)
        names = task.class_names(task.probabilities(predicted).shape[1])
        matrix = np.zeros((len(names), len(names)), dtype=np.int64)
        np.add.at(matrix, (truth, guess), 1)
        result.classes, result.confusion = names, matrix.tolist()
    return result


def _baseline(run: OpenRun, model, chosen: Split) -> tuple[dict | None, str | None]:
    """The trivial model's score on the same rows: the training split's class shares or
    mean, the run's loss and metrics (cbrun/engine/baseline.py)."""
    from cbrun.engine.baseline import score, trivial_model

    splits, _ = data_for_run(run)
    made = trivial_model(model, run.config, splits.train)
    if made is None:
        return None, None
    return score(made[0], chosen), made[1]


def _loss_first(metrics: dict) -> list:
    """As log.csv lists them: the losses, then the metrics (Keras returns metrics first)."""
    return sorted(metrics.items(), key=lambda item: not item[0].endswith("loss"))


def _samples(split: Split) -> int | None:
    return None if split.dataset is not None else len(split)
