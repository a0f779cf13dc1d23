"""What TensorFlow's converters and the LiteRT runtime write straight to file descriptor 2.

The TFLite converter's C++ code logs a dozen lines per conversion (`Reading SavedModel
from: /tmp/...`, `fully_quantize: 0, inference_type: 6`, "All log messages before
absl::InitializeLog()"), and the LiteRT interpreter one more (`INFO: Created TensorFlow Lite
XNNPACK delegate for CPU.`); TF_CPP_MIN_LOG_LEVEL silences none of them, because absl and
LiteRT log on their own. A user who asked for an export should see cbrun's lines, so these
go to a temporary file for the length of the call; what they said is kept for an error that
needs it, and `cbrun --debug` lets everything through.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Held:
    """What the native code wrote while held; filled in when the hold ends."""

    text: str = ""

    def last_line(self) -> str | None:
        lines = [line.strip() for line in self.text.splitlines() if line.strip()]
        return lines[-1] if lines else None


@contextlib.contextmanager
def held_stderr(show: bool = False) -> Iterator[Held]:
    """File descriptor 2 into a temporary file while the block runs (`show`: left as it
    is). Python's own sys.stderr is flushed first, so nothing it wrote before is held."""
    held = Held()
    if show:
        yield held
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield held
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            held.text = sink.read().decode("utf-8", "replace")
