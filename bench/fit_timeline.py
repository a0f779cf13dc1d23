"""Where a `cbrun train` spends its seconds: a timeline of one run, hook by hook.

    .venv/bin/python bench/fit_timeline.py CONFIG [cbrun train options]

Prints, on stderr, seconds since start for: imports done, `model.fit` entered, every
callback's on_train_begin / on_epoch_end / on_train_end with its own duration, `fit`
returned, and the final model save. The gap between the last on_train_end and "fit
returned" is work Keras does after the callbacks are done (the tail issue 13 asks about);
with `--stacks` the Python stacks are dumped every 0.7 s during that gap.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
T0 = time.perf_counter()


def mark(message: str) -> None:
    print(f"[{time.perf_counter() - T0:8.2f}] {message}", file=sys.stderr, flush=True)


def timed(function, name: str, after=None):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        mark(f"{name} {time.perf_counter() - started:.3f}s")
        if after is not None:
            after()
        return result
    return wrapper


def main(argv: list[str]) -> None:
    stacks = "--stacks" in argv
    argv = [a for a in argv if a != "--stacks"]
    from cbrun.cli import main as cbrun_main
    from cbrun.engine.tfimport import import_tensorflow
    from cbrun.process import set_whole_process

    # TensorFlow imported as `cbrun train` imports it (cbrun/engine/tfimport.py), so that
    # Model.fit can be wrapped here before the run starts.
    set_whole_process(True)
    import_tensorflow(training=True)
    import keras

    mark("imported")
    fit = keras.Model.fit

    def watch_tail() -> None:
        if stacks:
            faulthandler.dump_traceback_later(0.7, repeat=True)

    def timed_fit(self, *args, **kwargs):
        mark("fit entered")
        for callback in kwargs.get("callbacks") or []:
            label = type(callback).__name__
            for hook in ("on_train_begin", "on_epoch_end", "on_train_end"):
                setattr(callback, hook, timed(getattr(callback, hook), f"{label}.{hook}",
                                              watch_tail if hook == "on_train_end" else None))
        history = fit(self, *args, **kwargs)
        faulthandler.cancel_dump_traceback_later()
        mark("fit returned")
        return history

    keras.Model.fit = timed_fit
    keras.Model.save = timed(keras.Model.save, "model.save")
    mark("cbrun starting")
    # As the `cbrun` command runs: main() without arguments reads sys.argv and, once the
    # run is recorded, skips the interpreter's teardown (cbrun/cli.py), as `cbrun train` does.
    sys.argv = ["cbrun", "train", *argv]
    cbrun_main()


if __name__ == "__main__":
    main(sys.argv[1:])
