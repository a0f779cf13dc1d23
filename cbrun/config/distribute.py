"""The `distribute:` key: which devices train the model: tf.distribute strategies on the
TensorFlow backend, Keras's own DataParallel (one process per machine, or several) on JAX.

Checked here, before TensorFlow loads; whether the named devices exist is only known once it
has (cbrun/engine/distribute.py).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from cbrun.config.base import StrictModel

DEVICE = re.compile(r"^/(?:device:)?(cpu|gpu):(\d+)$", re.IGNORECASE)
KINDS = ("none", "one_device", "mirrored", "data_parallel", "multi_worker")
MULTI_WORKER_REFUSED = (
    "multi_worker (MultiWorkerMirroredStrategy) does not work with Keras 3 today: model.fit "
    "fails with \"Attempt to convert a value (PerReplica...)\" (keras-team/keras#20585, "
    "tensorflow/tensorflow#72388); across machines, use backend: jax with distribute: "
    "data_parallel (Keras's own DataParallel; docs/processes.md), or mirrored for the devices "
    "of one machine")


def parse_device(value: str) -> tuple[str, int]:
    """'/gpu:1' -> ('GPU', 1); ValueError naming the accepted forms."""
    found = DEVICE.match(value) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"a device is written /cpu:N or /gpu:N (or /device:GPU:N), got "
                         f"{value!r}")
    return found.group(1).upper(), int(found.group(2))


def canonical(value: str) -> str:
    kind, index = parse_device(value)
    return f"/{kind.lower()}:{index}"


class NoStrategy(StrictModel):
    type: Literal["none"] = "none"


class OneDevice(StrictModel):
    type: Literal["one_device"]
    device: str | None = Field(
        None, description="The device, /gpu:N or /cpu:N. Defaults to the first GPU, else the "
                          "CPU.")

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        return None if value is None else canonical(value)


class Mirrored(StrictModel):
    type: Literal["mirrored"]
    devices: list[str] | None = Field(
        None, min_length=1,
        description="The devices holding a replica each, e.g. [/gpu:0, /gpu:1]. Defaults to "
                    "every GPU, else the CPU (one replica). CPUs past the machine's one "
                    "(/cpu:1, ...) are made by splitting it, as Keras's own tests do.")

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        names = [canonical(v) for v in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"each device holds one replica; {', '.join(twice)} is listed "
                             "twice")
        return names


class DataParallel(StrictModel):
    """Keras's DataParallel on the JAX backend: the model replicated on every device of every
    process, each global batch split between them. One process, or several (`--processes`,
    a scheduler): docs/processes.md."""

    type: Literal["data_parallel"]


class MultiWorker(StrictModel):
    type: Literal["multi_worker"]

    @field_validator("type")
    @classmethod
    def _refused(cls, value: str) -> str:
        raise ValueError(MULTI_WORKER_REFUSED)


def by_name(value: Any) -> Any:
    """`distribute: mirrored` is short for `distribute: {type: mirrored}`."""
    return {"type": value} if isinstance(value, str) else value


def short_form_in_schema(schema: dict[str, Any]) -> None:
    """The JSON schema editors read accepts the short form too. (Validation reads it through
    `by_name`; in the type it would double every error message of the long form.)"""
    long_form = {key: schema.pop(key) for key in ("oneOf", "discriminator") if key in schema}
    schema["anyOf"] = [{"type": "string",
                        "enum": ["none", "one_device", "mirrored", "data_parallel"]},
                       long_form]


DistributeConfig = Annotated[NoStrategy | OneDevice | Mirrored | DataParallel | MultiWorker,
                             Field(discriminator="type")]
