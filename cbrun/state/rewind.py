"""A resume's changes to what the run wrote and saved: the callbacks' files cut back to the
restored epoch, and --continue-after-early-stop undoing the decision to stop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cbrun.callbacks.base import RewindPoint
from cbrun.run.runguard import check_inside
from cbrun.state.files import SavedState


def continue_after_early_stop(saved: SavedState, specs: list[Any]) -> None:
    """--continue-after-early-stop: undo, in the saved state, each callback's decision to
    stop (its spec knows what that decision is made of)."""
    saved.meta["stop_training"] = False
    for spec, entry in zip(specs, saved.meta["callbacks"], strict=False):
        if entry:
            entry["state"] = spec.continue_after_early_stop(entry["state"])


def rewind(run_dir: Path, specs: list[Any], saved: SavedState | None) -> int:
    """Cut back what the callbacks wrote after the saved state (CSV rows, TensorBoard
    events), so the resumed epochs write them once; returns how many were dropped.
    `specs` is `RunConfig.tracked_callbacks()`, the list the saved states line up with."""
    done = saved.epochs_done if saved else 0
    entries = saved.meta["callbacks"] if saved else [None] * len(specs)
    iterations = saved.meta.get("optimizer_iterations", 0) if saved else 0
    dropped = 0
    for spec, entry in zip(specs, entries, strict=False):
        state = (entry or {}).get("state") if saved else None
        for path in spec.run_files():  # rewinding opens them for writing
            check_inside(run_dir, path, f"{spec.type} file")
        dropped += spec.rewind(RewindPoint(run_dir, done, state, iterations))
    return dropped
