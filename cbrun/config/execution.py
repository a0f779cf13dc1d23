"""How the batches run: what Keras fails on mid-epoch, judged from the config.

`cbrun validate` and the start of a run both ask `execution_problems`; a run asks again once
TensorFlow knows the devices (cbrun/engine/distribute.py: the default `mirrored` takes every
GPU, a number only known then), with the same messages.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

from cbrun.config.distribute import parse_device

# Splitting the CPU is for running replicas side by side (and for tests); hundreds of
# logical CPUs would only be a typo.
MAX_LOGICAL_CPUS = 8

XLA_ON_SPLIT_CPUS = ("XLA cannot run replicas on split CPUs (\"Trying to access resource ... "
                     "located in device CPU:1 from device CPU:0\"); use jit_compile: auto or "
                     "false, or GPUs")

Found = list[tuple[tuple[Any, ...], str]]


def cpu_limit() -> int:
    return max(MAX_LOGICAL_CPUS, os.cpu_count() or 1)


def uneven_batch(kind: str, batch: int, replicas: int) -> str:
    return (f"under distribute: {kind}, batch_size is the global batch, split evenly between "
            f"the {replicas} replicas; use a multiple of {replicas} "
            f"(e.g. {batch - batch % replicas or replicas})")


def multi_step_refused(replicas: int) -> str:
    return (f"Keras's multi-batch loop fails under a strategy with {replicas} replicas (\"You "
            "must feed a value for placeholder tensor\"); use 1 or auto (which takes 1 here)")


def batch_hooks_refused(callbacks: list[str], wanted: int) -> str:
    return (f"{' and '.join(callbacks)} need{'s' * (len(callbacks) == 1)} every batch, but "
            f"{wanted} batches per call run batch hooks once per call; use auto or 1")


def named_devices(spec: Any) -> dict[tuple[Any, ...], str]:
    """The devices `distribute:` lists, by their place in the file (none for the defaults)."""
    if spec.type == "one_device":
        return {("distribute", "device"): spec.device} if spec.device else {}
    if spec.type == "mirrored":
        return {("distribute", "devices", i): d for i, d in enumerate(spec.devices or [])}
    return {}


def replica_problems(config: Any, replicas: int, all_cpus: bool) -> Found:
    found: Found = []
    if replicas < 2:
        return found
    batch = config.data.batch_size
    if batch % replicas:
        found.append((("data", "batch_size"),
                      uneven_batch(config.distribute.type, batch, replicas)))
    spe = config.compile.steps_per_execution
    if spe != "auto" and spe > 1:
        found.append((("compile", "steps_per_execution"), multi_step_refused(replicas)))
    if config.compile.jit_compile is True and all_cpus:
        found.append((("compile", "jit_compile"), XLA_ON_SPLIT_CPUS))
    return found


# Which backend each `distribute:` kind runs on: tf.distribute strategies are TensorFlow's,
# keras.distribution's DataParallel is implemented by Keras on JAX only.
STRATEGY_BACKEND = {"one_device": "tensorflow", "mirrored": "tensorflow",
                    "data_parallel": "jax"}


def backend_problems(config: Any) -> Found:
    found: Found = []
    if config.backend == "jax" and importlib.util.find_spec("jax") is None:
        found.append((("backend",), ("JAX is not installed in this Python; install cbrun's "
                                     "extra: pip install 'cbrun[jax]'")))
    if config.backend == "jax" and sys.version_info < (3, 12):
        # Keras's TensorBoard then only warns and profiles nothing.
        found += [(("callbacks", i, "profile_batch"), (
            "Keras profiles on backend: jax with Python 3.12 or later only, and this is "
            f"Python {sys.version_info[0]}.{sys.version_info[1]}; set profile_batch: 0, "
            "or train on backend: tensorflow")) for i, spec in enumerate(config.callbacks)
            if spec.type == "TensorBoard" and spec.profile_batch != 0]
    kind = config.distribute.type
    needs = STRATEGY_BACKEND.get(kind)
    if needs is None or needs == config.backend:
        return found
    if needs == "jax":
        why = ("data_parallel is Keras's own DataParallel (keras.distribution), which Keras "
               "implements on JAX only; set backend: jax (pip install 'cbrun[jax]')")
    else:
        why = (f"{kind} is a tf.distribute strategy, which runs on the TensorFlow backend "
               "only; on backend: jax use distribute: data_parallel")
    return [*found, (("distribute", "type"), why)]


def execution_problems(config: Any) -> Found:
    found: Found = backend_problems(config)
    spe = config.compile.steps_per_execution
    # A Custom class's hooks are only known once it is imported: the run judges those.
    hooks = [spec.type for spec in config.callbacks
             if spec.type != "Custom" and spec.batch_level()]
    if spe != "auto" and spe > 1 and hooks:
        found.append((("compile", "steps_per_execution"), batch_hooks_refused(hooks, spe)))
    spec = config.distribute
    parsed = {loc: parse_device(name) for loc, name in named_devices(spec).items()}
    for loc, (kind, index) in parsed.items():
        if kind == "CPU" and index >= (limit := cpu_limit()):
            found.append((loc, (f"CPUs past /cpu:0 are made by splitting the CPU, into at "
                                f"most {limit} here (/cpu:0 to /cpu:{limit - 1})")))
    if spec.type == "mirrored" and spec.devices:
        found += replica_problems(config, len(spec.devices),
                                  all(kind == "CPU" for kind, _ in parsed.values()))
    return found
