"""Pieces the commands share."""

from __future__ import annotations

import io
import os
import sys

from rich.console import Console

from cbrun.config.positions import Positions
from cbrun.errors import ConfigError


class _RunConsole(Console):
    """A reader that stops reading (`cbrun train ... | head`) must not stop the training.

    rich's default answer to a broken pipe is SystemExit(1), which would leave the run
    marked `running` forever. Here the display goes quiet and the run goes on; run.json and
    `cbrun runs` tell how it ended."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def console_for(quiet: bool) -> Console:
    """The training display; rich drops styling for NO_COLOR and when not on a terminal."""
    if quiet:
        return Console(file=io.StringIO())
    return _RunConsole(highlight=False)


def fill_positions(exc: ConfigError, positions: Positions) -> ConfigError:
    """Problems found while building Keras objects know their field; give them a line too."""
    placed = [positions.problem(p.loc, p.message, given=p.given, hint=p.hint)
              if p.line is None else p for p in exc.problems]
    return ConfigError(placed)
