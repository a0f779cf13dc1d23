"""A built Keras callback with the spec it came from: everything the run does with a
callback beyond handing it to Keras (its state, its messages, its stop) is asked of its
spec."""

from __future__ import annotations

from typing import Any, NamedTuple

from cbrun.callbacks.base import CallbackSpec


class Bound(NamedTuple):
    """A built Keras callback and the spec it came from."""

    spec: CallbackSpec
    callback: Any
