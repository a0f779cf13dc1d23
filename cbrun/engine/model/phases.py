"""Unfreeze stages: layers declared `trainable: false` start training at an epoch.

The optimizer is built once, for every variable that will ever train, so its state has the
same shape before and after a stage and a run resumes exactly on either side of it. A stage
switches at the start of its epoch, in the uninterrupted run and in a resumed one alike;
Keras then retraces its train step, which reads the trainable variables when traced.
"""

from __future__ import annotations

from typing import Any

import keras


def _layers(model: keras.Model, names: list[str]) -> list[Any]:
    return [model.get_layer(name) for name in names]


def optimizer_variables(model: keras.Model, stages: list[Any]) -> list[Any]:
    """The trainable variables once every stage has unfrozen its layers."""
    layers = [layer for stage in stages for layer in _layers(model, stage.layers)]
    before = [layer.trainable for layer in layers]
    for layer in layers:
        layer.trainable = True
    variables = list(model.trainable_variables)
    for layer, flag in zip(layers, before, strict=True):
        layer.trainable = flag
    return variables


def unfreeze_before(model: keras.Model, stages: list[Any], epoch: int) -> None:
    """Unfreeze what stages before `epoch` unfroze (a run resuming at `epoch`); the rate
    they set is in the saved optimizer state."""
    for stage in stages:
        if stage.at_epoch < epoch:
            for layer in _layers(model, stage.layers):
                layer.trainable = True


class Unfreeze(keras.callbacks.Callback):
    def __init__(self, stages: list[Any]):
        super().__init__()
        self.stages = stages

    def on_epoch_begin(self, epoch, logs=None):
        due = [stage for stage in self.stages if stage.at_epoch == epoch]
        for stage in due:
            for layer in _layers(self.model, stage.layers):
                layer.trainable = True
            if stage.learning_rate is not None:
                self.model.optimizer.learning_rate = stage.learning_rate
        if due:
            self.model.make_train_function(force=True)
