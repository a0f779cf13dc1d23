"""Pieces the commands share."""

from __future__ import annotations

import io

from rich.console import Console

from cbrun.config.positions import Positions
from cbrun.errors import ConfigError


def console_for(quiet: bool) -> Console:
    """rich respects NO_COLOR and drops styling when stdout is not a terminal."""
    if quiet:
        return Console(file=io.StringIO())
    return Console(highlight=False)


def fill_positions(exc: ConfigError, positions: Positions) -> ConfigError:
    """Problems found while building Keras objects know their field; give them a line too."""
    placed = [positions.problem(p.loc, p.message, given=p.given, hint=p.hint)
              if p.line is None else p for p in exc.problems]
    return ConfigError(placed)
