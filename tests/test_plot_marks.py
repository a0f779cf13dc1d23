"""Where the terminal drawing puts its best-epoch mark: on the best epoch's column, read
against the drawing's own x-axis ticks (the key alone cannot show an off-by-one)."""

from __future__ import annotations

import pytest
from conftest import cli_output, fake_run

BEST_GLYPH = "❋"


@pytest.mark.parametrize("best", [3, 6, 9])
def test_the_best_mark_sits_on_the_best_epoch(tmp_path, capsys, best):
    epochs = 10
    rows = "".join(f"{e},{1 / (e + 1):.4f},{abs(e + 1 - best) * 0.1 + 0.3:.4f}\n"
                   for e in range(epochs))
    run = fake_run(tmp_path, "20261130-000000-marks", csv="epoch,loss,val_loss\n" + rows,
                   best={"epoch": best, "value": 0.3}, stopped_early_at=None,
                   status="completed", epochs_done=epochs, epochs_planned=epochs)
    code, out, err = cli_output(capsys, "plot", run, "--terminal", "--width", "100",
                                "--height", "30")
    assert code == 0, err
    lines = out.splitlines()
    (star_line,) = [line for line in lines if BEST_GLYPH in line and "best" not in line]
    star = star_line.index(BEST_GLYPH)
    # The tick labels under the frame: integers at the columns of their epochs.
    (ticks_line,) = [line for line in lines
                     if line.split() and all(t.isdigit() for t in line.split())]
    ticks = {int(t): ticks_line.index(f" {t} " if f" {t} " in ticks_line else t)
             + (1 if f" {t} " in ticks_line else 0) for t in ticks_line.split()}
    (a, col_a), (b, col_b) = min(ticks.items()), max(ticks.items())
    per_epoch = (col_b - col_a) / (b - a)
    assert per_epoch > 4  # wide enough that one epoch off is a visible distance
    assert abs(star - (col_a + (best - a) * per_epoch)) < per_epoch / 2, (star, ticks)
