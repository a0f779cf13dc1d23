"""`python signal_at_import.py SIG[,SIG...] ARGS...`: `cbrun ARGS`, the process sending
itself the signals, in order, as TensorFlow's import begins: the instant a test means,
however fast or loaded the machine (a sleep after some milestone is not)."""

import importlib.abc
import os
import signal
import sys


class _SignalAtImport(importlib.abc.MetaPathFinder):
    def __init__(self, signals: list[signal.Signals]):
        self.signals = signals

    def find_spec(self, name, path=None, target=None):
        """Finds nothing: the import itself goes on as usual."""
        if name == "tensorflow" and self.signals:
            signals, self.signals = self.signals, []
            for sig in signals:
                os.kill(os.getpid(), sig)  # handled here, inside the import statement


if __name__ == "__main__":
    sys.meta_path.insert(0, _SignalAtImport([signal.Signals[s] for s in sys.argv[1].split(",")]))
    sys.argv = ["cbrun", *sys.argv[2:]]  # as `python -m cbrun ARGS` sees them
    from cbrun.cli import main

    main()
