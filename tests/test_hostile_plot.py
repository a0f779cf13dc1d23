"""`cbrun plot` on valid but extreme logs, on what is no regular file, and where the
terminal drawing puts its best-epoch mark."""

from __future__ import annotations

import io
import math
import os
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from conftest import HANG_S, cli_output, fake_run
from test_plot import RUN_ID, assert_not_blank, figure_of, panels

from cbrun.plotting.figure import MOST_POINTS, build_figure
from cbrun.plotting.inputs import all_families, load_runs

EXTREME = {
    "float64 limits": "epoch,loss,val_loss\n0,1.7e308,-1.7e308\n1,-1.79e308,1e-300\n"
                      "2,-1e299,2.2e-308\n3,0.5,0.25\n",
    "subnormal rates": "epoch,loss,learning_rate\n0,1,0.001\n1,0.5,5e-324\n2,0.25,1e-310\n"
                       "3,0.2,4e-320\n",
    "mathtext names": "epoch,loss,$\\alpha$,$x^{2}_{$,val_$loss\n0,2,1,3,1\n1,1,2,3,0.5\n",
    "epochs near 1e20": "epoch,loss\n0,1\n50000000000000000000,0.7\n"
                        "99999999999999999999,0.5\n",
}


@pytest.mark.parametrize("name", EXTREME)
def test_extreme_but_valid_logs_draw(tmp_path, capsys, name):
    log = tmp_path / "log.csv"
    log.write_text(EXTREME[name])
    code, out, err = cli_output(capsys, "plot", log, "-o", tmp_path / "log.png")
    assert code == 0, err
    assert_not_blank(tmp_path / "log.png")
    code, out, err = cli_output(capsys, "plot", log, "--terminal", "--width", "90", "--height", "60")
    assert (code, err) == (0, ""), err
    assert "loss" in out.splitlines()


def test_mathtext_column_names_are_shown_as_written(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text(EXTREME["mathtext names"])
    fig = figure_of(log)
    fig.canvas.draw()  # mathtext would fail here, at the first draw
    titles = {t.replace("\\$", "$") for t in panels(fig)}
    assert {"$\\alpha$", "$x^{2} {$"} <= titles
    texts = [t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()]
    assert "\\$x^{2}_{\\$" in texts  # an escaped '$' is drawn as a '$'


def test_values_beyond_any_axis_are_gaps_like_inf(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text(EXTREME["float64 limits"])
    fig = figure_of(log)
    (line,) = [ln for ln in panels(fig)["loss"].get_lines() if ln.get_label() == "loss"]
    ys = list(line.get_ydata())
    assert [math.isnan(y) for y in ys] == [True, True, False, False]
    assert ys[2:] == [-1e299, 0.5]


@pytest.mark.parametrize("make", ["fifo", "device", "folder-fifo"])
def test_a_log_that_is_no_regular_file_is_refused_without_blocking(tmp_path, make):
    if make == "device":
        log = Path("/dev/zero")
    else:
        log = tmp_path / "log.csv"
        os.mkfifo(log)  # nobody writes: opening it would wait forever
    target = tmp_path if make == "folder-fifo" else log
    result = subprocess.run([sys.executable, "-m", "cbrun", "plot", str(target), "--terminal"],
                            capture_output=True, text=True, timeout=HANG_S, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {log} is not a CSV log (not a regular file, but "
                                     f"a pipe, a device or a socket): name a log.csv or a run "
                                     f"directory")


def test_terminal_drawing_of_a_long_log_stays_small(tmp_path):
    """250,000 epochs (10 MB) under a 512 MiB address-space limit (it needs about 130):
    before the drawing kept only what a panel can show, plotext held every point, about
    1.5 GB here and 8.4 GB for a 45 MB log."""
    log = tmp_path / "log.csv"
    with log.open("w") as handle:
        handle.write("epoch,loss,val_loss,learning_rate\n")
        for i in range(250_000):
            handle.write(f"{i},{1 / (i + 1) + (i % 97) / 1e4:.10f},{2 / (i + 2):.10f},"
                         f"{0.001 * 0.5 ** (i // 20_000):.6g}\n")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 29, 1 << 29))

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "cbrun", "plot", str(log), "--terminal", "--width", "100",
         "--height", "40"], capture_output=True, text=True, timeout=HANG_S, preexec_fn=limit,
        env=env, check=False)
    assert (result.returncode, result.stderr) == (0, "")
    assert "250000 epochs" in result.stdout and "learning rate" in result.stdout


def test_png_drawing_of_a_long_log_keeps_what_a_panel_shows_and_costs_per_pixel(tmp_path,
                                                                              capsys):
    """60,000 epochs with a one-epoch spike and a gap: each curve is drawn from at most
    about MOST_POINTS points (per pixel, not per epoch), the spike, the lowest value and the
    gap are still drawn, and drawing the PNG allocates a few MB however long the log (it
    grew with the log before: 12 MB here, the 45 MB log's million rows 170 MB more)."""
    log = tmp_path / "log.csv"
    with log.open("w") as handle:
        handle.write("epoch,loss,val_loss,learning_rate\n")
        for i in range(60_000):
            val = "nan" if 20_000 <= i < 20_050 else f"{2 / (i + 2):.10f}"
            loss = 9.5 if i == 33_333 else 1 / (i + 1) + (i % 97) / 1e4
            handle.write(f"{i},{loss:.10f},{val},{0.001 * 0.5 ** (i // 10_000):.6g}\n")
    runs = load_runs([log])
    tracemalloc.start()
    try:
        fig = build_figure(runs, all_families(runs))
        png = io.BytesIO()
        fig.savefig(png, format="png")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * 2**20, peak
    lines = {(ax.get_title(), line.get_label()): line for ax in fig.axes
             for line in ax.get_lines() if line.get_gid() == "series"}
    assert set(lines) == {("loss", "loss"), ("loss", "val_loss"),
                          ("learning rate", "learning_rate")}
    for line in lines.values():
        assert len(line.get_xdata()) <= 1.5 * MOST_POINTS
    loss = lines["loss", "loss"]
    assert max(loss.get_ydata()) == 9.5  # the spike
    assert min(loss.get_ydata()) == pytest.approx(min(runs[0].log.values["loss"]))
    assert any(math.isnan(v) for v in lines["loss", "val_loss"].get_ydata())  # the gap
    xs = list(loss.get_xdata())
    assert xs == sorted(xs) and xs[0] == 1 and xs[-1] > 59_900  # the whole span
    code, _out, err = cli_output(capsys, "plot", log, "-o", tmp_path / "long.png")
    assert code == 0, err
    assert_not_blank(tmp_path / "long.png")


# ---------------------------------------------------------------- the best-epoch mark


def _columns_to_epochs(lines: list[str]):
    """A function from a text column to the epoch there, read from the x axis: the tick
    marks on the frame and the numbers under them."""
    frame = next(i for i, line in enumerate(lines) if "└" in line and "┬" in line)
    ticks = [col for col, char in enumerate(lines[frame]) if char == "┬"]
    labels = lines[frame + 1]
    values = []
    for col in ticks:
        start = col
        while start > 0 and labels[start - 1] != " ":
            start -= 1
        values.append(float(labels[start:].split()[0]))
    (c0, v0), (c1, v1) = (ticks[0], values[0]), (ticks[-1], values[-1])
    return lambda col: v0 + (col - c0) * (v1 - v0) / (c1 - c0)


def _star_epoch(out: str) -> float:
    lines = out.splitlines()
    (row,) = [line for line in lines if "❋" in line and "best" not in line]
    return _columns_to_epochs(lines)(row.index("❋"))


def test_terminal_best_mark_sits_at_the_best_epoch_of_a_run(tmp_path, capsys):
    code, out, _ = cli_output(capsys, "plot", fake_run(tmp_path, RUN_ID), "--terminal",
                              "--metrics", "loss", "--width", "120", "--height", "30")
    assert code == 0 and "best 0.3615 (epoch 13)" in out
    # One epoch is about 6 columns here: a mark one epoch off is far outside this.
    assert abs(_star_epoch(out) - 13) < 0.3


@pytest.mark.parametrize("best", [1, 17, 29, 40])
def test_terminal_best_mark_sits_at_the_lowest_value_of_a_log(tmp_path, capsys, best):
    rows = [f"{e - 1},{1 + abs(e - best) / 10}" for e in range(1, 41)]
    log = tmp_path / "log.csv"
    log.write_text("epoch,val_loss\n" + "\n".join(rows) + "\n")
    code, out, _ = cli_output(capsys, "plot", log, "--terminal", "--width", "120", "--height", "24")
    assert code == 0 and f"(epoch {best})" in out
    assert abs(_star_epoch(out) - best) < 0.4
