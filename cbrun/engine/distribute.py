"""`distribute:` on the upper floor: the named devices made real, and the tf.distribute
strategy the model is built and compiled under (Keras's fit then runs every step through it);
on JAX, Keras's DataParallel over every device of every process (`data_parallel`).

A machine has one CPU device; `/cpu:1` and up are made by splitting it into logical devices,
as Keras's own distribute tests do. TensorFlow accepts that only before it sets up its
devices, i.e. before the first tensor of the process: `strategy_for` runs first in a session.
"""

from __future__ import annotations

import contextlib
import sys

import tensorflow as tf

from cbrun.config.distribute import parse_device
from cbrun.config.execution import named_devices, replica_problems, uneven_batch
from cbrun.config.root import RunConfig
from cbrun.errors import ConfigError, Problem, RunError


def split_cpu_first(config: RunConfig) -> None:
    """The logical CPUs `distribute:` names, made before anything else in the process touches
    TensorFlow's devices (a resume reads its saved state and rewinds TensorBoard's event
    files first). A GPU the machine lacks is said later, by `strategy_for`."""
    names = named_devices(config.distribute).values()
    cpus = [index for kind, index in map(parse_device, names) if kind == "CPU"]
    if cpus:  # within the limit: the config was validated (config/execution.py)
        _try_split(max(cpus) + 1)


def _try_split(count: int) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    with contextlib.suppress(RuntimeError):  # raised once the devices are set up
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])


def _split_cpu(count: int) -> None:
    _try_split(count)
    have = len(tf.config.list_logical_devices("CPU"))
    if have < count:
        raise RunError(f"distribute names /cpu:{count - 1}, but TensorFlow in this process "
                       f"already set up its devices with {have} CPU; run it in a fresh "
                       "process (the `cbrun` command)")


def _check(devices: list[str], loc: tuple) -> list[str]:
    """The devices, made to exist (split CPUs) or refused (a GPU the machine lacks)."""
    gpus = len(tf.config.list_physical_devices("GPU"))
    parsed = [parse_device(d) for d in devices]
    cpus = [index for kind, index in parsed if kind == "CPU"]
    problems = []
    for i, (kind, index) in enumerate(parsed):
        if kind == "GPU" and index >= gpus:
            have = ", ".join(f"/gpu:{g}" for g in range(gpus)) or "none"
            problems.append(Problem(loc=(*loc, i) if loc[-1] == "devices" else loc,
                                    given=devices[i],
                                    message=f"this machine has {gpus} GPU(s) ({have})"))
    if problems:
        raise ConfigError(problems)
    if cpus:  # within the limit: the config was validated (config/execution.py)
        _split_cpu(max(cpus) + 1)
    return devices


def check_strategy_fits(config: RunConfig, strategy: tf.distribute.Strategy | None) -> None:
    """What Keras fails on mid-epoch under several replicas, refused before the first batch
    (each found by running it: a traceback in epoch 1 otherwise). The config's own check
    (cbrun/config/execution.py) knows the replicas only where the devices are listed."""
    if strategy is None:
        return
    cpus = all(tf.DeviceSpec.from_string(device).device_type == "CPU"
               for device in strategy.extended.worker_devices)
    found = replica_problems(config, strategy.num_replicas_in_sync, cpus)
    if found:
        raise ConfigError([Problem(loc=loc, message=message) for loc, message in found])


def strategy_for(config: RunConfig) -> tf.distribute.Strategy | None:
    """The strategy of `config.distribute`, or None for TensorFlow's default device (and on
    JAX, whose distribution is Keras's own: `data_parallel`)."""
    spec = config.distribute
    if spec.type in ("none", "data_parallel"):
        return None
    gpus = [f"/gpu:{i}" for i in range(len(tf.config.list_physical_devices("GPU")))]
    if spec.type == "one_device":
        device = spec.device or (gpus[0] if gpus else "/cpu:0")
        devices = _check([device], ("distribute", "device"))
        strategy = tf.distribute.OneDeviceStrategy(device)
    else:
        devices = _check(spec.devices or gpus or ["/cpu:0"], ("distribute", "devices"))
        strategy = tf.distribute.MirroredStrategy(devices)
    check_strategy_fits(config, strategy)  # before the line that says how it splits
    replicas = strategy.num_replicas_in_sync
    split = (f"{replicas} replicas; batch_size {config.data.batch_size} is split between them, "
             f"{config.data.batch_size // replicas} each" if replicas > 1 else "1 replica")
    print(f"distribute: {spec.type} on {', '.join(devices)} ({split})", file=sys.stderr)
    return strategy


def scope(strategy: tf.distribute.Strategy | None):
    """Where variables are made: the model's and the optimizer's."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def data_parallel(config: RunConfig) -> bool:
    return config.distribute.type == "data_parallel"


def set_data_parallel(config: RunConfig) -> None:
    """Keras's DataParallel over every device of every process of the job (after
    clear_session, which forgets it). cbrun gives each process its share of every global
    batch itself (`shard_batches`), so Keras shards nothing (`auto_shard_dataset=False`):
    validation and test data then go to every process whole, and each one evaluates all of
    it (the metrics are those of one process: no row dropped or padded)."""
    if not data_parallel(config):
        return
    import keras

    from cbrun.engine.peers import current

    distribution = keras.distribution.DataParallel(auto_shard_dataset=False)
    keras.distribution.set_distribution(distribution)
    peers = current()
    processes = peers.count if peers else 1
    replicas = distribution.num_model_replicas
    batch = config.data.batch_size
    if batch % replicas:
        raise ConfigError([Problem(loc=("data", "batch_size"), given=batch,
                                   message=uneven_batch("data_parallel", batch, replicas))])
    where = f"{processes} process{'es' * (processes > 1)}, {replicas} device" \
            f"{'s' * (replicas > 1)}"
    split = (f"batch_size {batch} is split between them, {batch // replicas} each"
             if replicas > 1 else f"batch_size {batch}")
    print(f"distribute: data_parallel on {where} ({split}; an epoch's last, partial batch "
          "is dropped, so every batch splits evenly)", file=sys.stderr)


def clear_data_parallel() -> None:
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() == "jax":
            keras.distribution.set_distribution(None)


def whole_batches(steps: int, rows: int | None, batch_size: int, config: RunConfig) -> int:
    """Under data_parallel every batch is whole, with one process as with many (so their
    runs are the same run): an epoch's last, partial batch is dropped. A batch short of
    rows would leave a process without its share, and the others waiting forever."""
    if not data_parallel(config):
        return steps
    if rows is None:
        # A python loader's tf.data.Dataset has no row count to cut at: its last, short
        # batch would hang a job of several processes.
        raise ConfigError([Problem(loc=("distribute",), message=(
            "distribute: data_parallel needs a training split it can cut into whole "
            "batches (arrays, a table, an image folder); a python loader's "
            "tf.data.Dataset has no row count to cut at: return arrays from the loader"))])
    whole = rows // batch_size
    if whole == 0:
        raise ConfigError([Problem(loc=("data", "batch_size"), given=batch_size, message=(
            f"under distribute: data_parallel every batch is whole, but the training split "
            f"has {rows} rows, fewer than one batch"))])
    return min(steps, whole)


def shard_batches(dataset: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """This process's share of every global batch: process p of P gets rows
    [p*B/P, (p+1)*B/P) of each (what Keras's own sharding does: rebatch, then shard).
    Every process builds the same global pipeline, in the (seed, epoch) order."""
    from cbrun.engine.peers import current

    peers = current()
    if peers is None or peers.count == 1:
        return dataset
    steps = int(dataset.cardinality())  # known: cbrun's pipelines assert it
    return (dataset.rebatch(batch_size // peers.count).shard(peers.count, peers.index)
            .apply(tf.data.experimental.assert_cardinality(steps)))
