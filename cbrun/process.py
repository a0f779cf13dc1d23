"""What this Python process is: the `cbrun` command itself, or a program that calls cbrun
(a notebook through cbrun.api, a test through cli.main(argv)). Only the command may do what
changes the whole process (freeze TensorFlow's objects out of the garbage collector's sight,
hold the collector through the first epoch: cbrun/engine/tfimport.py). cli.main says which,
once; everything else asks here."""

from __future__ import annotations

_whole = False


def set_whole_process(value: bool) -> None:
    global _whole
    _whole = value


def is_whole_process() -> bool:
    return _whole
