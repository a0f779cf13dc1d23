"""Import TensorFlow without its start-up chatter.

TensorFlow's C++ side writes a dozen lines to stderr while it loads (oneDNN notices, CUDA
probing, "All log messages before absl::InitializeLog()") that TF_CPP_MIN_LOG_LEVEL does not
silence. A user who typed `cbrun train` should see cbrun's output, so file descriptor 2 points
at /dev/null for the length of the import. Python exceptions still propagate and are shown;
`cbrun --debug` keeps everything.
"""

from __future__ import annotations

import os
import sys


def import_tensorflow(debug: bool = False) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if debug or "tensorflow" in sys.modules:
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
