"""Import TensorFlow without its start-up chatter.

TensorFlow's C++ side writes a dozen lines to stderr while it loads (oneDNN notices, CUDA
probing, "All log messages before absl::InitializeLog()") that TF_CPP_MIN_LOG_LEVEL does not
silence. A user who typed `cbrun train` should see cbrun's output, so file descriptor 2 points
at /dev/null for the length of the import. Python exceptions still propagate and are shown;
`cbrun --debug` keeps everything.
"""

from __future__ import annotations

import gc
import importlib.abc
import importlib.util
import os
import sys
import threading

from cbrun.errors import RunError
from cbrun.process import is_whole_process


def import_tensorflow(debug: bool = False, *, training: bool = False,
                      backend: str | None = None) -> None:
    """training: a run follows (train, resume), whose first epoch ends the collector's hold
    (`collector_back`); evaluate and predict get the collector back at once.
    backend: the Keras backend the run trains on (`backend:` of its config), chosen before
    Keras is imported; None: the one already loaded, else TensorFlow."""
    choose_backend(backend or "tensorflow", strict=backend is not None and training)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The import makes ~300,000 objects and few of them garbage; with the collector on, its
    # full collections walk the growing heap again and again: 2.3 s -> 1.8 s without
    # (measured on 2 cores).
    enabled = gc.isenabled()
    gc.disable()
    try:
        _import(debug)
    finally:
        _freeze_if_command(training)
        if enabled and not _HELD:
            gc.enable()


def choose_backend(backend: str, *, strict: bool) -> str:
    """Keras reads KERAS_BACKEND once, when it is first imported (and `import tensorflow`
    imports it): set here, before, so that neither a user's ~/.keras/keras.json nor the
    environment picks another. In a process where Keras is loaded already (a notebook, a
    second run), its backend stays: a run that must train on another is refused (`strict`);
    evaluate and predict read the backend-neutral model.keras on the one there is."""
    if "keras" in sys.modules:
        import keras

        loaded = keras.backend.backend()
        if strict and loaded != backend:
            raise RunError(f"this run trains on backend: {backend}, but this Python process "
                           f"has Keras loaded on {loaded} already (Keras chooses its backend "
                           "once, at import); run it with the `cbrun` command (a fresh "
                           "process)")
        return loaded
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax":
        from cbrun.engine.peers import import_jax

        import_jax()
    return backend


# Seconds the collector may stay off in a `cbrun` process if the first epoch takes long.
# The variable is for tests, which must not depend on how loaded the machine is.
HOLD_AT_MOST = float(os.environ.get("CBRUN_GC_HOLD_AT_MOST") or 60.0)
_HELD: list[threading.Timer] = []


def _freeze_if_command(training: bool) -> None:
    """In a `cbrun` process, the ~300,000 objects TensorFlow's import made go out of the
    garbage collector's sight: each full collection would otherwise walk them all (0.12 s on
    2 cores, several times a run), and none of them is ever garbage. Not in a notebook's
    process (cbrun.api), whose own objects would be frozen too.

    The collector then stays off through building the model and tracing the first epoch,
    which make hundreds of thousands of long-lived objects more (0.3-0.5 s of collections
    on 2 cores), until `collector_back` (the first epoch's end) or HOLD_AT_MOST seconds."""
    if _command() and "tensorflow" in sys.modules:
        gc.freeze()
        if training and not _HELD:
            timer = threading.Timer(HOLD_AT_MOST, collector_back)
            timer.daemon = True
            _HELD.append(timer)
            timer.start()


def collector_back() -> None:
    """The collector on again, what the first epoch built frozen with the rest (alive for
    the whole run); a no-op where `_freeze_if_command` did not hold it."""
    try:
        timer = _HELD.pop()  # the first caller only: the epoch's end or the timer
    except IndexError:
        return
    timer.cancel()
    gc.freeze()
    gc.enable()


def _command() -> bool:
    return is_whole_process()


# Imported by TensorFlow's or Keras's import for something training never calls, so a `cbrun`
# process imports them when first used instead: matplotlib.pyplot (Keras's image gallery,
# 0.33 s of the ~2 s import) and, where it is installed, JAX (TFLite's converter from JAX
# functions, `tensorflow.lite.python.util`: 0.8-1.5 s of processor time, a quarter of the
# import, measured on 2 cores; `backend: jax` imports JAX before TensorFlow and keeps it).
LATER = ("matplotlib", "jax", "jaxlib")


class _Later(importlib.abc.MetaPathFinder):
    """Fails the import of `names` (and their submodules) while TensorFlow loads; the
    importers catch it (`try: import ...`) and get a stand-in below."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"{name} is imported later, when used", name=name)


class _PyplotWhenUsed:
    def __getattr__(self, name: str):
        import matplotlib.pyplot

        return getattr(matplotlib.pyplot, name)


def _jax_jit_when_used(*args, **kwargs):
    from jax import jit

    return jit(*args, **kwargs)


def _import(debug: bool) -> None:
    if "tensorflow" in sys.modules:
        return
    later = tuple(name for name in LATER if name not in sys.modules) if _command() else ()
    if not later:
        _import_quietly(debug)
        return
    blocker = _Later(later)
    sys.meta_path.insert(0, blocker)
    try:
        _import_quietly(debug)
    finally:
        sys.meta_path.remove(blocker)
    gallery = sys.modules.get("keras.src.visualization.plot_image_gallery")
    if gallery is not None and getattr(gallery, "plt", None) is None:
        gallery.plt = _PyplotWhenUsed()
    if "jax" in later and importlib.util.find_spec("jax") is not None:
        # TFLite took JAX for absent (`_jit = None`): converting from JAX would say so.
        for name in ("tensorflow.lite.python.util", "tensorflow.lite.python.lite"):
            module = sys.modules.get(name)
            if module is not None and getattr(module, "_jit", 0) is None:
                module._jit = _jax_jit_when_used


def _import_quietly(debug: bool) -> None:
    if debug:
        import tensorflow  # noqa: F401
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()  # CUDA probing prints here, not at import
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
