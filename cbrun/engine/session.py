"""One training process of a run: a fresh `cbrun train` or a `cbrun resume`.

Read top to bottom: seed, data, callbacks, model, fit, finish. Everything the run writes
lands in its run directory. How this fits with the rest: docs/ARCHITECTURE.md, "From YAML to
a run directory".
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from cbrun.config.base import BuildContext, DataView
from cbrun.config.execution import batch_hooks_refused
from cbrun.config.monitors import primary_monitor
from cbrun.config.root import RunConfig
from cbrun.engine import callbacks as cbs
from cbrun.engine.adapt import adapt_layers
from cbrun.engine.callbacks import own
from cbrun.engine.callbacks.keeper import StateKeeper
from cbrun.engine.callbacks.relay import relayed, unfinished
from cbrun.engine.data import evaluate_split, train_dataset, train_steps, validation_data
from cbrun.engine.datacheck import check_data_fits
from cbrun.engine.distribute import (
    clear_data_parallel,
    data_parallel,
    scope,
    set_data_parallel,
    shard_batches,
    strategy_for,
    whole_batches,
)
from cbrun.engine.events import Events
from cbrun.engine.model import build_model, compile_model
from cbrun.engine.model.phases import Unfreeze, optimizer_variables, unfreeze_before
from cbrun.engine.pacing import batches_per_call, step_seconds
from cbrun.engine.peers import Rounds
from cbrun.engine.peers import current as current_peers
from cbrun.engine.progress import ProgressDisplay
from cbrun.engine.sources import load_splits
from cbrun.engine.sources.images import decode_error, images_named
from cbrun.engine.tfimport import collector_back
from cbrun.engine.tracking import TrackingCallback
from cbrun.errors import ConfigError, Problem, RunError
from cbrun.run.handle import OpenRun
from cbrun.run.record import RunRecord, Status, StopReason
from cbrun.run.runguard import check_tree
from cbrun.run.segment import (
    limit_time,
    pending_interrupt,
    stop_point,
    stop_reason,
    stopping,
)
from cbrun.state.files import SavedState

_RUNS_IN_PROCESS = 0


@dataclass
class Outcome:
    status: Status  # completed | stopped_early | pruned | failed
    epochs_done: int
    stopped_early_at: int | None
    stop_reason: StopReason | None
    note: str | None
    model_path: Path
    # What failed after the model was saved (the test split), so the run keeps its status.
    test_error: str | None = None


def choose_steps_per_execution(config: RunConfig, steps: int, one_because: list[str],
                               step_seconds: float | None = None) -> int:
    """`auto`: as many batches per call as take ~0.25 s, up to an epoch (train/pacing.py);
    1 where `one_because` names something that needs every batch.

    A divisor of the epoch's steps, because cbrun's data pipeline yields exactly `steps`
    batches per epoch and Keras would otherwise pull the next epoch's first batches into
    this epoch's last call.
    """
    wanted = config.compile.steps_per_execution
    if wanted != "auto":
        loc = ("compile", "steps_per_execution")
        if steps % wanted:
            divisors = [d for d in range(1, steps + 1) if steps % d == 0]
            raise ConfigError([Problem(
                loc=loc, given=wanted,
                message=f"must divide the {steps} batches of an epoch so epochs stay aligned "
                        f"with the data order; divisors: {divisors}")])
        callbacks = [why for why in one_because if not why.startswith("distribute")]
        if wanted > 1 and callbacks:
            # Keras would call their batch hooks once per call, with the call's last batch.
            # (The config refuses this for every callback but Custom, known only once built.)
            raise ConfigError([Problem(loc=loc, given=wanted,
                                       message=batch_hooks_refused(callbacks, wanted))])
        return wanted
    if one_because:
        return 1
    return batches_per_call(steps, step_seconds)


def describe_choice(spe: int, steps: int, one_because: list[str]) -> str:
    """The line that tells what `auto` chose, and why."""
    if one_because:
        callbacks = [why for why in one_because if not why.startswith("distribute")]
        reasons = [f"{why} runs one batch per call" for why in one_because
                   if why.startswith("distribute")]
        if callbacks:
            reasons.insert(0, f"{', '.join(callbacks)} need{'s' * (len(callbacks) == 1)} "
                              "every batch")
        return f"steps_per_execution auto: 1 ({'; '.join(reasons)})"
    share = "the whole epoch" if spe == steps else f"{steps // spe} calls an epoch"
    return (f"steps_per_execution auto: {spe} batch{'es' if spe > 1 else ''} per compiled "
            f"call ({share})")


def train(run: OpenRun, *, console, live: bool, restore: SavedState | None = None,
          learning_rate: float | None = None, on_restored=None) -> Outcome:
    """Train the opened run `run` (its directory, record and config; data paths start at
    its config's folder), from a saved state when `restore` is one.
    learning_rate: a rate set with --set on resume, replacing the one the state holds.
    on_restored: called once the saved state is back in place (resume writes its changed
    config only then, so a resume that cannot start changes nothing)."""
    # Keras's dtype policy is process-wide: set for this run's model, and given back after,
    # so a notebook's own Keras code after cbrun.train() is not silently in mixed precision.
    previous = keras.mixed_precision.dtype_policy()
    try:
        return _train(run.config, run.run_dir, run.config_dir, run.record, console=console,
                      live=live, restore=restore, learning_rate=learning_rate,
                      on_restored=on_restored, dev_batches=run.dev_batches)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
        clear_data_parallel()


def _train(config: RunConfig, run_dir: Path, config_dir: Path, record: RunRecord, *,
           console, live: bool, restore: SavedState | None,
           learning_rate: float | None, on_restored, dev_batches: int | None) -> Outcome:
    # First: splitting the CPU into logical devices is only possible before any tensor.
    strategy = strategy_for(config)
    # A clean slate: layer names, the global seed generator and graphs left by an earlier
    # run in this process would otherwise make two identical configs train differently.
    # Collecting garbage with TensorFlow loaded takes ~0.15 s; only a process that has
    # trained before has a previous run's model to free.
    global _RUNS_IN_PROCESS
    keras.backend.clear_session(free_memory=_RUNS_IN_PROCESS > 0)
    _RUNS_IN_PROCESS += 1
    keras.utils.set_random_seed(config.seed)
    # After clear_session, which resets it: this run's policy, before its model is built.
    keras.mixed_precision.set_dtype_policy(config.compile.mixed_precision or "float32")
    set_data_parallel(config)
    peers = current_peers()
    several_processes = peers is not None and peers.count > 1
    splits = load_splits(config.data, config_dir, run_dir, seed=config.seed)
    for line in splits.notes:  # how a table is read: whole, or streamed (engine/sources)
        console.print(line, style="dim", highlight=False)
    if restore is None:  # a resume draws the same rows: said once is enough
        for line in splits.warnings(config.data):
            print(f"warning: data: {line}", file=sys.stderr)
        if config.data.fraction < 1.0:
            kept = ", ".join(f"{name} {len(split):,}" for name, split in splits.named().items())
            console.print(f"data.fraction {config.data.fraction}: rows kept: {kept}")
            if len(splits.train) < config.data.batch_size:
                print(f"warning: data: data.fraction {config.data.fraction} keeps "
                      f"{len(splits.train):,} training rows, fewer than one batch of "
                      f"{config.data.batch_size}: the run says little about the model",
                      file=sys.stderr)
    splits = _cut(splits, config, dev_batches, console if restore is None else None)
    stop_point()  # Ctrl-C and SIGTERM stop the run here and at each batch (cbrun/run/segment.py)
    splits.save(run_dir)
    steps = whole_batches(
        train_steps(splits.train, config.data.batch_size, config.fit.steps_per_epoch),
        len(splits.train) if splits.train.dataset is None else None,
        config.data.batch_size, config)
    first_epoch = restore.epochs_done if restore else 0

    # What callbacks may read: each split's inputs and labels (a loader's tf.data.Dataset
    # has no arrays to show), and the class names the source saved.
    view = DataView(splits={name: (split.x, split.y) for name, split in splits.named().items()
                            if split.dataset is None},
                    seed=config.seed, class_names=splits.class_names)
    ctx = BuildContext(run_dir=run_dir, config_dir=config_dir, resuming=restore is not None,
                       data=view)
    bound = cbs.build_callbacks(config, ctx)
    monitor, mode = primary_monitor(config)
    recorder = own.RunRecorder(record, monitor, mode, cbs.judge_of(bound, monitor))
    nan_guard = own.NanGuard()
    tracking = TrackingCallback(config, run_dir, record, first_epoch)
    # Checked, not walked, while training: what the data source wrote before it, and W&B's
    # folder, written by the tracking process alone (wandb-core links its log there for the
    # moment of wandb.init; the link is dropped at once, and a resume walks it all).
    shallow = ("data", "cache", *(["wandb"] if config.tracking and config.tracking.wandb
                                  else []))
    seekable = splits.train.dataset is None
    if not seekable and config.fit.state_every_batches:
        print("note: the loader's training data is a tf.data.Dataset, which cannot start "
              "inside an epoch: the state is saved at epoch ends only (fit.state_every "
              "applies to arrays, tables and image folders)", file=sys.stderr)
    # Several processes agree where a signal or the time limit stops them (engine/peers.py).
    rounds = Rounds(peers) if several_processes else None
    keeper = StateKeeper(run_dir, bound, restore,
                         extra_state=lambda: {"best": record.best},
                         # run.json as it is now, written once the state is on disk
                         after_save=lambda: RunRecord(run_dir, record.file.model_copy(
                             deep=True)).save,
                         learning_rate=learning_rate, on_restored=on_restored,
                         steps=steps, seekable=seekable,
                         every_batches=config.fit.state_every_batches,
                         every_seconds=config.fit.state_every_seconds, stopping=stopping,
                         decide=None if rounds is None else (
                             lambda epoch, done, due: rounds.at(epoch, done, stop_reason(),
                                                                due)))
    tracking.follow(keeper.writer)  # an epoch reaches the trackers once its state is written
    events = Events(bound)
    display = ProgressDisplay(console, config.fit.epochs, steps, events, live)
    reporter = None
    if record.file.sweep is not None:  # a trial of `cbrun sweep`: its study may prune it
        from cbrun.engine.sweep_trial import SweepReporter

        reporter = SweepReporter(record.file.sweep)

    if config.model.kind == "path" and not config.model.safe_mode:
        print(f"warning: model.path {config.model.path} is loaded with safe_mode: false, so "
              "any code it holds (Lambda layers) runs; only do this with files you trust",
              file=sys.stderr)
    stages = list(getattr(config.model, "unfreeze", []))
    with scope(strategy):  # the model's and the optimizer's variables live on its devices
        model = build_model(config, config_dir)
        stop_point()
        check_data_fits(config, splits, model)
        with images_named([splits.train]):
            adapt_layers(model, config, splits.train)
        stop_point()
        # Under several replicas, Keras's multi-step loop fails on the distributed iterator
        # ("while/cond/Placeholder"): `auto` keeps one batch per call there.
        several = strategy is not None and strategy.num_replicas_in_sync > 1
        one_because = cbs.every_batch(bound) + (
            [f"distribute: {config.distribute.type}"] if several else [])
        auto = config.compile.steps_per_execution == "auto"
        # Timing a forward pass eagerly would be a collective of its own under
        # data_parallel: the count of batches per call then follows the epoch alone.
        spe = choose_steps_per_execution(config, steps, one_because, step_seconds(
            model, splits.train, config.data.batch_size)
            if auto and not one_because and not data_parallel(config) else None)
        if auto:
            console.print(describe_choice(spe, steps, one_because), style="dim",
                          highlight=False)
        record.set_steps_per_execution(spe)
        compile_model(model, config, spe)
        if restore is None:  # a resumed run keeps the one its first segment scored
            record.set_baseline(_baseline(model, config, splits))
        # Built now rather than lazily inside fit, so a saved state has variables to go
        # into; for every variable an unfreeze stage will train, so its shape never changes.
        model.optimizer.build(optimizer_variables(model, stages))
    unfreeze_before(model, stages, first_epoch)

    validation, validation_kw = validation_data(splits.validation, config.data.batch_size)
    epochs = config.fit.epochs
    if restore is not None and restore.meta.get("stop_training"):
        epochs = first_epoch  # the run had ended; only on_train_end is left to run
    # Unfreeze first: a stage's layers train from the first batch of its epoch. Then the
    # data order (put in the pipeline's list below): every other callback sees epoch k with
    # its order set.
    callbacks = [own.RunGuard(run_dir, shallow), Unfreeze(stages), own.LearningRateLog(),
                 *(b.callback for b in bound), nan_guard, recorder, keeper,
                 *([reporter] if reporter else []), tracking, display, own.CollectorBack(),
                 (own.AgreedStop(peers.agree_to_stop, rounds) if several_processes
                  else own.SafeStop())]

    def fit(first: int, last: int, start: int = 0, relay: dict | None = None):
        dataset, order = train_dataset(splits.train, config.data.batch_size, config.seed,
                                       config.data.shuffle and not config.fit.overfit_batches,
                                       steps, start=start)
        dataset = shard_batches(dataset, config.data.batch_size)
        listed = [callbacks[0], callbacks[1], *([order] if order else []), *callbacks[2:]]
        if start:
            build_metrics(model, dataset)
        model.fit(dataset, epochs=last, initial_epoch=first, validation_data=validation,
                  # cbrun's own pipelines (their length asserted, their order read at the
                  # first batch): Keras then keeps the iterator it makes at an epoch's end
                  # for the next epoch instead of making two an epoch. A loader's dataset
                  # keeps Keras's way: a reshuffling one draws its seed as its iterator is
                  # made, so which iterator an epoch gets changes its order.
                  steps_per_epoch=None if order is None else steps - start,
                  validation_batch_size=validation_kw.get("batch_size"),
                  validation_freq=config.fit.validation_freq,
                  class_weight=config.fit.class_weight,
                  callbacks=relayed(listed, **relay) if relay else listed,
                  shuffle=False,  # the dataset is already in the (seed, epoch) order
                  verbose=0)

    limit_time(config.fit.max_seconds)
    fitted = False
    try:
        start = restore.batches_done if restore is not None and epochs > first_epoch else 0
        if start:
            # The rest of the epoch the state was saved in, then the epochs after it, as
            # one training to the callbacks (engine/callbacks/relay.py).
            with unfinished(model.optimizer):
                fit(first_epoch, first_epoch + 1, start,
                    relay={"offset": start, "steps": steps, "end": False})
            if model.stop_training or epochs == first_epoch + 1:
                for callback in callbacks:
                    callback.on_train_end()
                model.optimizer.finalize_variable_values(model.trainable_weights)
            else:
                fit(first_epoch + 1, epochs, relay={"begin": False})
        else:
            fit(first_epoch, epochs)
        limit_time(None)  # every epoch ran: saving the model and the test split are left
        fitted = True
        # fit returned on its own: every epoch ran, or a callback ended the run. A signal
        # that came after the last epoch's end (SafeStop's last look) has nothing left to
        # stop: saving the model and the test metrics take moments, and the record then
        # says how the run really ended (not "interrupted" with its model unsaved).
        late = pending_interrupt()
        if late is not None:
            print(f"{late} after the last epoch: finishing the run (saving the model)",
                  file=sys.stderr)
    except tf.errors.InvalidArgumentError as exc:
        tracking.abort("failed")
        error = decode_error((splits.train, splits.validation))
        if error is None:
            raise
        raise error from exc
    except BaseException as exc:
        # Ctrl-C and SIGTERM (not Exceptions) end the tracked runs as interrupted, a crash
        # as failed, rather than leaving them "running" forever.
        tracking.abort("failed" if isinstance(exc, Exception) else "interrupted")
        if several_processes and isinstance(exc, Exception):
            lost = peers.lost(exc)
            if lost is not None:
                raise lost from None
        raise
    finally:
        collector_back()  # if fit ended before an epoch did
        if not fitted:  # the last state on disk before the run's end is recorded
            keeper.writer.close()
        display.close()

    epochs_done = record.epochs_done
    stopped_at = cbs.stopped_epoch(bound)
    reason, note = StopReason.EARLY_STOPPING, events.stop_note
    if nan_guard.epoch is not None:
        stopped_at = None
    elif stopped_at is None and epochs_done < config.fit.epochs:
        # A callback whose spec does not say it stops (a custom one, say) set
        # model.stop_training.
        stopped_at, reason = epochs_done, StopReason.CALLBACK
        note = f"a callback stopped training after epoch {epochs_done}"
    model_path = run_dir / "model.keras"
    try:
        check_tree(run_dir, shallow=shallow)  # Keras's save follows a link
        # While the writer thread writes the last epoch's state (0.1-0.2 s for 20 MB, seconds
        # for hundreds): both are on disk before the run's end is recorded.
        model.save(model_path)
    finally:
        keeper.writer.close()
    if several_processes:
        peers.same_weights(model, run_dir)
    if _averaged_at_end(config):
        print("note: use_ema: model.keras holds the moving average of the weights, which "
              "Keras wrote into the model when training ended; the metrics logged per epoch "
              "are the trained weights' (`cbrun evaluate` scores the average)",
              file=sys.stderr)
    pruned = reporter is not None and reporter.pruned_after is not None
    nan = nan_guard.epoch is not None
    test_error = None
    if splits.test is not None and not nan and not pruned:
        try:
            record.set_test(evaluate_test(model, splits.test, config.data.batch_size))
        except RunError as exc:  # a test image that does not decode: the model is saved
            test_error = (f"the test split was not evaluated: {exc}, then evaluate the "
                          f"saved model with: cbrun evaluate {run_dir} --split test")
    if nan:
        outcome = Outcome("failed", epochs_done, None, StopReason.NAN_LOSS,
                          f"the loss became NaN or inf in epoch {nan_guard.epoch}", model_path)
    elif pruned:
        outcome = Outcome("pruned", epochs_done, None, StopReason.PRUNED,
                          f"pruned by the sweep after epoch {reporter.pruned_after}", model_path)
    elif stopped_at is not None:
        outcome = Outcome("stopped_early", epochs_done, stopped_at, reason, note, model_path)
    else:
        outcome = Outcome("completed", epochs_done, None, None, None, model_path)
    outcome.test_error = test_error
    return tracking.finish(outcome)


def _baseline(model: keras.Model, config: RunConfig, splits) -> dict | None:
    """The trivial model's score, or None with a line saying why there is none. A baseline
    that cannot be scored never stops a run from training."""
    from cbrun.engine.baseline import baseline

    try:
        return baseline(model, config, splits)
    except Exception as exc:  # noqa: BLE001 - a comparison, not the run: said, not raised
        print(f"warning: no baseline for this run ({type(exc).__name__}: "
              f"{str(exc).splitlines()[0] if str(exc) else ''})", file=sys.stderr)
        return None


def _averaged_at_end(config: RunConfig) -> bool:
    options = getattr(config.compile.optimizer, "model_extra", None) or {}
    return options.get("use_ema") is True and not options.get("ema_overwrite_frequency")


def build_metrics(model: keras.Model, dataset) -> None:
    """The compiled metrics made before fit, so that a state saved inside an epoch can put
    their accumulators back: Keras makes them in the first training step otherwise. One
    batch through the model in inference mode (no random draws, no statistics updated),
    then reset."""
    x, y = next(iter(dataset.take(1)))
    model.compute_metrics(x, y, model(x, training=False))
    model.reset_metrics()


def _cut(splits, config: RunConfig, dev_batches: int | None, console):
    """`fit.overfit_batches`: the training split's first N batches, also the validation
    split; `--fast-dev-run`: every split's first batch; `fit.validation_steps`: the
    validation split's first N batches."""
    from cbrun.engine.sources import Split, first_batches

    batch_size = config.data.batch_size
    if dev_batches:
        for name, split in splits.named().items():
            setattr(splits, name, first_batches(split, dev_batches, batch_size))
    elif config.fit.overfit_batches:
        n = config.fit.overfit_batches
        train = first_batches(splits.train, n, batch_size)
        splits.train = train
        if splits.validation is not None:  # a run without one logs no val_ metrics
            splits.validation = Split(x=train.x, y=train.y, dataset=train.dataset)
        if console is not None:
            if train.dataset is not None:
                what = f"first {n} batch{'es' if n > 1 else ''}"
            else:
                there = -(-len(train) // batch_size)
                what = (f"first {n} batch{'es' if n > 1 else ''} ({len(train):,} rows)"
                        if there >= n else f"{there} batch{'es' if there > 1 else ''} there "
                        f"are ({len(train):,} rows; {n} were asked)")
            console.print(f"overfit_batches {n}: training and validating on the same {what}, "
                          "unshuffled", highlight=False)
    if config.fit.validation_steps and splits.validation is not None and not dev_batches \
            and not config.fit.overfit_batches:
        # Cut here rather than passed to fit: Keras runs up to steps_per_execution batches
        # per call, past its validation_steps.
        splits.validation = first_batches(splits.validation, config.fit.validation_steps,
                                          batch_size)
    return splits


def evaluate_test(model: keras.Model, split, batch_size: int) -> dict[str, float]:
    """The test split, once, with the weights the run ends with (after EarlyStopping's
    restore_best_weights): {"test_loss": ..., "test_<metric>": ...}. A Ctrl-C or SIGTERM
    stops it between batches, as it stops training."""
    return {f"test_{name}": value for name, value in
            evaluate_split(model, split, batch_size, callbacks=[own.SafeStop()]).items()}
