"""`cbrun plot`: the figure itself (panels, lines, marks, scales), the files it writes,
comparisons, the terminal drawing, --watch, and every kind of bad input."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import FAKE_RUN, cli, cli_output, fake_run, only_run, tiny_config, write_config

from cbrun.commands.plot import shared_folder
from cbrun.plotting.figure import build_figure
from cbrun.plotting.inputs import all_families, load_runs, parse_metrics, select_families
from cbrun.plotting.terminal import RUN_GLYPHS, integer_ticks, render
from tests.helpers.light import run_cbrun

ROOT = Path(__file__).resolve().parents[1]
RUN_ID = "20261121-153012-digits-mlp"


def figure_of(*paths: Path, metrics=()):
    runs = load_runs([Path(p) for p in paths])
    return build_figure(runs, select_families(all_families(runs), parse_metrics(metrics)))


def panels(fig) -> dict[str, object]:
    return {ax.get_title(): ax for ax in fig.axes}


def by_gid(ax, gid: str) -> list:
    return [line for line in ax.get_lines() if line.get_gid() == gid]


def assert_not_blank(path: Path) -> None:
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    rgb = pixels[..., :3]
    ink = (rgb.min(axis=-1) < 0.9).mean()  # share of pixels that are not near-white
    assert pixels.shape[0] > 300 and pixels.shape[1] > 600
    assert rgb.std() > 0.05
    assert 0.02 < ink < 0.6


# The figure itself


def test_a_run_draws_one_panel_per_family_with_its_lines_and_marks(tmp_path):
    fig = figure_of(fake_run(tmp_path, RUN_ID))
    axes = panels(fig)
    assert list(axes) == ["loss", "accuracy", "learning rate"]

    series = {title: [l.get_label() for l in by_gid(ax, "series")] for title, ax in axes.items()}
    assert series == {
        "loss": ["loss", "val_loss"],
        "accuracy": ["accuracy", "val_accuracy"],
        "learning rate": ["learning_rate"],
    }
    # x is the 1-based epoch, like Keras's "Epoch 3/30".
    assert list(by_gid(axes["loss"], "series")[0].get_xdata()) == list(range(1, 18))

    (best,) = by_gid(axes["loss"], "best")
    assert list(best.get_xdata()) == [13]
    assert best.get_ydata()[0] == pytest.approx(0.3615227937698364)
    assert by_gid(axes["accuracy"], "best") == []  # the star sits on the monitored curve only

    for ax in axes.values():
        assert [l.get_xdata()[0] for l in by_gid(ax, "early_stop")] == [17]
        # The resume is drawn between epoch 6 (first process) and 7 (the resumed one).
        assert [l.get_xdata()[0] for l in by_gid(ax, "resume")] == [6.5]
        assert ax.get_xlabel() == "epoch"
        assert ax.get_legend() is not None
        assert ax.xaxis.get_gridlines()[0].get_visible()

    assert axes["learning rate"].get_yscale() == "log"
    assert axes["loss"].get_yscale() == "linear"
    assert axes["accuracy"].get_yscale() == "linear"
    assert RUN_ID in fig.get_suptitle()
    assert "best val_loss 0.3615 at epoch 13" in fig.get_suptitle()


def test_the_best_mark_follows_the_runs_monitor_and_mode(tmp_path):
    run = fake_run(tmp_path, RUN_ID, monitor={"name": "val_accuracy", "mode": "max"}, best=None)
    axes = panels(figure_of(run))
    (best,) = by_gid(axes["accuracy"], "best")
    assert list(best.get_xdata()) == [10]  # val_accuracy peaks at 0.8972 in epoch 10
    assert by_gid(axes["loss"], "best") == []


def test_the_real_run_draws_what_run_json_says(real_run, tmp_path):
    """`real_run` (tests/conftest.py) is a run that `cbrun train` made: EarlyStopping on
    val_loss with patience 1 and min_delta 0.03 stops it before its 10 epochs."""
    info = json.loads((real_run / "run.json").read_text())
    # The facts the figure must show, known before looking at it.
    assert info["status"] == "stopped_early"
    assert info["monitor"]["name"] == "val_loss"
    stopped, best_at = info["stopped_early_at"], info["best"]["epoch"]
    assert 1 <= best_at <= stopped == info["epochs_done"] < 10

    fig = figure_of(real_run)
    axes = panels(fig)
    assert list(axes) == ["loss", "accuracy", "learning rate"]
    assert axes["learning rate"].get_yscale() == "log"
    lines = by_gid(axes["loss"], "series")
    assert [l.get_label() for l in lines] == ["loss", "val_loss"]
    assert list(lines[0].get_xdata()) == list(range(1, stopped + 1))
    (best,) = by_gid(axes["loss"], "best")
    assert best.get_xdata()[0] == best_at
    assert best.get_ydata()[0] == pytest.approx(info["best"]["value"])
    for ax in axes.values():
        assert [l.get_xdata()[0] for l in by_gid(ax, "early_stop")] == [stopped]
        assert by_gid(ax, "resume") == []  # trained in one go
    assert f"stopped early at epoch {stopped}" in fig.get_suptitle()
    out = tmp_path / "real.png"
    fig.savefig(out)
    assert_not_blank(out)


def test_a_really_resumed_run_is_marked_where_the_resume_began(tmp_path, capsys):
    config = write_config(tmp_path, tiny_config(name="resumed", fit={"epochs": 3}))
    assert cli("train", config, "--runs-dir", tmp_path / "runs", "-q") == 0
    run = only_run(tmp_path / "runs")
    assert cli("resume", run, "--epochs", "5", "-q") == 0
    capsys.readouterr()
    info = json.loads((run / "run.json").read_text())
    assert [(s["kind"], s["first_epoch"]) for s in info["segments"]] == [("train", 1),
                                                                         ("resume", 4)]

    fig = figure_of(run)
    axes = panels(fig)
    assert list(by_gid(axes["loss"], "series")[0].get_xdata()) == [1, 2, 3, 4, 5]
    for ax in axes.values():
        # Between epoch 3, the last of the first process, and 4, the first of the resume.
        assert [l.get_xdata()[0] for l in by_gid(ax, "resume")] == [3.5]
        assert by_gid(ax, "early_stop") == []
    assert "resumed at epoch 4" in fig.get_suptitle()
    code, out, _ = cli_output(capsys, "plot", run, "--terminal", "--width", "80", "--height", "40")
    assert code == 0 and "┊ resumed (epoch 4)" in out


def test_the_png_is_written_beside_the_csv_and_is_not_blank(tmp_path, capsys):
    run = fake_run(tmp_path, RUN_ID)
    code, out, err = cli_output(capsys, "plot", run / "log.csv")
    assert (code, err) == (0, "")
    png = run / "log.png"
    assert out.strip() == f"wrote {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_not_blank(png)


def test_output_can_be_another_path_and_format(tmp_path, capsys):
    out_file = tmp_path / "curves.svg"
    run = fake_run(tmp_path, RUN_ID)
    code, out, _ = cli_output(capsys, "plot", run, "-o", out_file)
    assert (code, out) == (0, f"wrote {out_file}\n")
    assert out_file.read_text().lstrip().startswith("<?xml")
    assert "<svg" in out_file.read_text()[:2000]
    for name, magic in (("curves.pdf", b"%PDF"), ("curves.jpg", b"\xff\xd8\xff")):
        code, _, err = cli_output(capsys, "plot", run, "-o", tmp_path / name)
        assert (code, err) == (0, "")
        assert (tmp_path / name).read_bytes().startswith(magic)


def test_a_comparison_draws_one_line_per_run_and_column(tmp_path, capsys):
    first = fake_run(tmp_path / "runs", "20261121-153012-digits-mlp")
    second = fake_run(tmp_path / "runs", "20261122-101500-digits-wide",
                      csv=(FAKE_RUN / "log.csv").read_text().replace(",0.0", ",0.02"))
    fig = figure_of(first, second)
    axes = panels(fig)
    loss = by_gid(axes["loss"], "series")
    assert [l.get_label() for l in loss] == [
        "20261121-153012-digits-mlp loss", "20261121-153012-digits-mlp val_loss",
        "20261122-101500-digits-wide loss", "20261122-101500-digits-wide val_loss",
    ]
    assert len(by_gid(axes["learning rate"], "series")) == 2
    # One color per run, solid for training and dashed for validation.
    assert loss[0].get_color() == loss[1].get_color() != loss[2].get_color()
    assert (loss[0].get_linestyle(), loss[1].get_linestyle()) == ("-", "--")
    assert len(by_gid(axes["loss"], "best")) == 2
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:2] == [first.name, second.name]

    code, out, _ = cli_output(capsys, "plot", first, second)
    assert code == 0
    assert out.strip() == f"wrote {tmp_path / 'runs' / 'compare.png'}"
    assert_not_blank(tmp_path / "runs" / "compare.png")


def test_a_comparison_leaves_out_a_run_with_no_rows_yet(tmp_path, capsys):
    good = fake_run(tmp_path, "20261121-153012-a")
    empty = fake_run(tmp_path, "20261121-153013-b", csv="")
    code, out, err = cli_output(capsys, "plot", good, empty, "-o", tmp_path / "c.png")
    assert (code, out) == (0, f"wrote {tmp_path / 'c.png'}\n")
    assert "20261121-153013-b" in err and "left out of the comparison" in err


def test_a_glob_of_runs_skips_images_and_files_that_are_no_logs(tmp_path, capsys):
    runs = tmp_path / "runs"
    fake_run(runs, "20261121-153012-a")
    fake_run(runs, "20261121-153013-b")
    code, out, _ = cli_output(capsys, "plot", *sorted(runs.iterdir()))
    assert (code, out) == (0, f"wrote {runs / 'compare.png'}\n")
    (runs / "weights.npz").write_bytes(b"PK\x03\x04\x00\x00binary")
    (runs / "notes").mkdir()  # a folder that is no run

    # What `cbrun plot runs/*` passes now: the runs, the compare.png it wrote, and others.
    code, out, err = cli_output(capsys, "plot", *sorted(runs.iterdir()))
    assert (code, out) == (0, f"wrote {runs / 'compare.png'}\n")
    assert [line.split(": is it")[0] for line in err.splitlines()] == [
        f"warning: left out of the comparison: {runs / 'notes'} has no log.csv",
        f"warning: skipped {runs / 'weights.npz'}: not a CSV log (a NumPy array file, .npz)",
    ]
    assert [l.get_label() for l in by_gid(panels(figure_of(*sorted(runs.glob("2*"))))["loss"],
                                         "series")][::2] == ["20261121-153012-a loss",
                                                             "20261121-153013-b loss"]


@pytest.mark.parametrize("name", ["log.png", "weights.npz", "model.keras", "run.json",
                                  "binary.csv"])
def test_a_single_file_that_is_no_csv_exits_2_and_writes_nothing(tmp_path, capsys, name):
    run = fake_run(tmp_path, RUN_ID)
    assert cli_output(capsys, "plot", run)[0] == 0
    path = run / name
    if not path.exists():
        path.write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00 epoch,loss")
    before = {p: p.read_bytes() for p in run.iterdir()}
    code, out, err = cli_output(capsys, "plot", path)
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {path} is not a CSV log (") and "\n" not in err[:-1]
    assert {p: p.read_bytes() for p in run.iterdir()} == before  # log.png not overwritten


def test_runs_from_unrelated_folders_are_compared_in_the_current_folder(tmp_path, capsys,
                                                                       monkeypatch):
    assert shared_folder([Path("/data/a/run1"), Path("/scratch/run2")]) is None
    assert shared_folder([Path("/data/a/run1"), Path("/data/b/run2")]) == Path("/data")
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    # The repository's digits run and one in /dev/shm (a RAM folder every Linux has) share
    # only "/", wherever the repository and the temporary folder live.
    elsewhere = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        other = fake_run(elsewhere, "20261122-101500-other")
        assert shared_folder([FAKE_RUN.resolve(), other.resolve()]) is None
        code, out, err = cli_output(capsys, "plot", FAKE_RUN, other)
    finally:
        shutil.rmtree(elsewhere)
    assert (code, out) == (0, "wrote compare.png\n")
    assert err == (f"note: the runs share no folder; writing compare.png in the current "
                   f"folder ({here})\n")
    assert_not_blank(here / "compare.png")


@pytest.mark.parametrize(
    "metrics, titles",
    [
        (["loss"], ["loss"]),
        (["val_accuracy,lr"], ["accuracy", "learning rate"]),
        (["learning_rate", "loss"], ["learning rate", "loss"]),
    ],
)
def test_metrics_picks_the_families(tmp_path, metrics, titles):
    assert list(panels(figure_of(fake_run(tmp_path, RUN_ID), metrics=metrics))) == titles


def test_an_unknown_metric_is_a_usage_error_with_a_suggestion(tmp_path, capsys):
    code, _, err = cli_output(capsys, "plot", fake_run(tmp_path, RUN_ID), "--metrics", "accuracy,val_acc")
    assert code == 2
    assert "no metric 'val_acc'" in err and "did you mean 'val_accuracy'" in err


# Bad input: a clear message, or a drawing of what makes sense


@pytest.mark.parametrize(
    "content, code, message",
    [
        # Bad input, like a missing file: exit 2 (the rule `cbrun plot --help` states).
        ("", 2, "is empty: no epoch has been logged yet"),
        ("epoch,accuracy,learning_rate,loss,val_accuracy,val_loss\n", 2,
         "has a header but no rows: no epoch has been logged yet"),
        ("when,who\nmonday,me\n", 2, "has no numeric column to plot (columns: when, who)"),
    ],
)
def test_a_csv_with_nothing_to_draw_exits_with_a_message(tmp_path, capsys, content, code, message):
    path = tmp_path / "log.csv"
    path.write_text(content)
    assert cli_output(capsys, "plot", path) == (code, "", f"error: {path} {message}\n")
    assert not (tmp_path / "log.png").exists()


def test_a_missing_file_exits_2_without_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cbrun", "plot", str(tmp_path / "nope.csv")],
        capture_output=True, text=True, check=False, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2
    assert result.stderr == f"error: no such file or directory: {tmp_path / 'nope.csv'}\n"


def test_a_directory_without_a_log_exits_2(tmp_path, capsys):
    code, _, err = cli_output(capsys, "plot", tmp_path)
    assert code == 2 and "has no log.csv" in err
    fake_run(tmp_path / "runs", RUN_ID)
    code, _, err = cli_output(capsys, "plot", tmp_path / "runs")
    assert code == 2 and "holds runs but is not one" in err


def test_gaps_from_na_nan_and_inf_are_drawn_as_gaps(tmp_path, capsys):
    csv = "epoch,loss,val_loss\n0,1.0,1.2\n1,NA,inf\n2,nan,0.9\n3,0.5,\n4,0.4,0.7\n"
    path = tmp_path / "log.csv"
    path.write_text(csv)
    axes = panels(figure_of(path))
    loss, val = by_gid(axes["loss"], "series")
    assert [math.isnan(v) for v in loss.get_ydata()] == [False, True, True, False, False]
    assert [math.isnan(v) for v in val.get_ydata()] == [False, True, False, True, False]
    # No run.json: no early stop or resume, and the best of val_loss from the log.
    assert by_gid(axes["loss"], "early_stop") == by_gid(axes["loss"], "resume") == []
    assert list(by_gid(axes["loss"], "best")[0].get_xdata()) == [5]
    assert cli_output(capsys, "plot", path)[0] == 0
    assert_not_blank(tmp_path / "log.png")


def test_a_single_row_draws_visible_points(tmp_path, capsys):
    path = tmp_path / "log.csv"
    path.write_text("epoch,learning_rate,loss,val_loss\n0,0.001,0.9,1.1\n")
    fig = figure_of(path)
    axes = panels(fig)
    for line in by_gid(axes["loss"], "series"):
        assert line.get_markevery() == [0]  # one point and no line: it needs a dot
    assert axes["learning rate"].get_yscale() == "log"
    for ax in axes.values():
        # One whole epoch tick, not 0.6, 0.8, 1.0, 1.2 ...
        low, high = ax.get_xlim()
        assert [t for t in ax.get_xticks() if low <= t <= high] == [1]
    assert "1 epoch ·" in fig.get_suptitle()
    assert cli_output(capsys, "plot", path)[0] == 0


def test_a_constant_learning_rate_sits_inside_its_log_axis(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,learning_rate,loss\n0,0.001,0.9\n1,0.001,0.8\n2,0.001,0.7\n")
    low, high = panels(figure_of(path))["learning rate"].get_ylim()
    # Room on both sides, the same in decades: the line is in the middle, not on the frame.
    assert math.log10(0.001 / low) == pytest.approx(math.log10(high / 0.001))
    assert math.log10(0.001 / low) >= 0.1


def test_a_trailing_comma_or_a_second_epoch_column_draws_no_extra_panel(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss,epoch,\n0,0.9,0,\n1,0.7,1,\n")
    axes = panels(figure_of(path))
    assert list(axes) == ["loss"]
    assert "no finite values logged" not in [t.get_text() for t in axes["loss"].texts]


def test_a_step_column_is_the_x_axis(tmp_path, capsys):
    path = tmp_path / "history.csv"
    path.write_text("step,loss\n100,0.9\n200,0.7\n300,0.6\n")
    fig = figure_of(path)
    ax = panels(fig)["loss"]
    assert list(by_gid(ax, "series")[0].get_xdata()) == [100, 200, 300]
    assert ax.get_xlabel() == "step"
    assert "3 steps" in fig.get_suptitle() and "at step 300" in fig.get_suptitle()
    low, high = ax.get_xlim()
    assert low < 100 - 2 and high > 300 + 2  # the end points clear the frame
    code, _, err = cli_output(capsys, "plot", path)
    assert (code, err) == (0, "")  # nothing to warn about: the rows are numbered


def test_without_validation_columns_each_panel_has_one_line(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,accuracy,loss\n0,0.5,1.0\n1,0.7,0.8\n2,0.8,0.6\n")
    axes = panels(figure_of(path))
    assert {t: len(by_gid(ax, "series")) for t, ax in axes.items()} == {"loss": 1, "accuracy": 1}
    # The best mark falls back to loss when there is no val_loss.
    assert list(by_gid(axes["loss"], "best")[0].get_xdata()) == [3]


def test_a_csv_without_an_epoch_column_numbers_its_rows(tmp_path, capsys):
    path = tmp_path / "history.csv"
    path.write_text("loss,val_loss\n0.9,1.0\n0.7,0.8\n")
    code, out, err = cli_output(capsys, "plot", path)
    assert (code, out) == (0, f"wrote {tmp_path / 'history.png'}\n")
    assert "has no 'epoch' or 'step' column: numbering its rows from 1" in err
    assert (tmp_path / "history.png").exists()


def test_a_foreign_csv_draws_its_numeric_columns(tmp_path, capsys):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch;time;mse;val_mse;note\n0;10:00;4,0;5,0;start\n1;10:01;2,0;3,5;\n")
    axes = panels(figure_of(path))
    assert list(axes) == ["mse"]
    assert [l.get_label() for l in by_gid(axes["mse"], "series")] == ["mse", "val_mse"]
    assert cli_output(capsys, "plot", path)[0] == 0


def test_an_unreadable_run_json_plots_without_marks(tmp_path, capsys):
    run = fake_run(tmp_path, RUN_ID)
    (run / "run.json").write_text('{"id": "x", "status": ')
    code, _, err = cli_output(capsys, "plot", run, "-o", tmp_path / "p.png")
    assert code == 0 and "not valid JSON" in err
    axes = panels(figure_of(run))
    assert by_gid(axes["loss"], "early_stop") == []
    assert len(by_gid(axes["loss"], "best")) == 1  # from the log, with the default monitor


def test_a_run_json_missing_keys_still_plots(tmp_path, capsys):
    run = tmp_path / "bare"
    run.mkdir()
    shutil.copy(FAKE_RUN / "log.csv", run / "log.csv")
    (run / "run.json").write_text('{"status": "running", "segments": "garbage", "best": 3}')
    fig = figure_of(run)
    assert "bare" in fig.get_suptitle() and "running" in fig.get_suptitle()
    assert cli_output(capsys, "plot", run)[0] == 0


def test_a_column_with_no_finite_value_gets_an_empty_panel(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss,lr\n0,nan,0\n1,inf,0\n")
    axes = panels(figure_of(path))
    assert "no finite values logged" in [t.get_text() for t in axes["loss"].texts]
    assert axes["lr"].get_yscale() == "linear"  # nothing positive to put on a log scale


@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "plot.bmpx"], "'.bmpx' is not a supported image format"),
        (["-o", "noext"], "no extension is not a supported image format"),
        # pgf needs LaTeX; eps and ps drop the transparency of the grid and legends.
        (["-o", "x.pgf"], "'.pgf' is not a supported image format; use one of .png, .svg, .pdf"),
        (["-o", "x.eps"], "'.eps' is not a supported image format"),
        (["-o", "x.ps"], "'.ps' is not a supported image format"),
        (["-o", "missing/dir/p.png"], "does not exist"),
        (["--terminal", "-o", "x.png"], "choose one"),
    ],
)
def test_bad_output_options_are_usage_errors(tmp_path, capsys, monkeypatch, args, message):
    run = fake_run(tmp_path, RUN_ID)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli_output(capsys, "plot", run, *args)
    assert code == 2 and message in err


# In the terminal


def test_terminal_drawing_shows_panels_keys_and_marks(tmp_path, capsys):
    code, out, err = cli_output(capsys, "plot", fake_run(tmp_path, RUN_ID), "--terminal",
                         "--width", "100", "--height", "45")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"{RUN_ID}: stopped early · 17/40 epochs")
    for title in ("loss", "accuracy", "learning rate"):
        assert title in lines
    assert "▚ loss  ⢕ val_loss  ❋ best 0.3615 (epoch 13)  ║ early stop (epoch 17)" in out
    assert "┊ resumed (epoch 7)" in out
    assert "1e-02" in out and "2e-04" in out  # the learning rate on a log scale
    assert "\x1b[" not in out  # not a terminal here: no color codes
    # Header included, nothing is wider than asked; a line is left for the prompt.
    assert max(len(line) for line in lines) <= 100
    assert len(lines) <= 44


@pytest.mark.parametrize("height", [12, 14, 18, 22, 26, 30, 37, 60])
@pytest.mark.parametrize("width", [60, 80, 120])
def test_terminal_drawing_fits_the_height_and_width_asked(tmp_path, capsys, height, width):
    code, out, err = cli_output(capsys, "plot", fake_run(tmp_path, RUN_ID), "--terminal",
                         "--width", width, "--height", height)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) <= height - 1  # the last line is the shell prompt's
    assert max(len(line) for line in lines) <= width
    assert lines[0].startswith(RUN_ID)  # the id is never cut
    titles = [t for t in ("loss", "accuracy", "learning rate") if t in lines]
    assert titles[:1] == ["loss"]
    left_out = [t for t in ("loss", "accuracy", "learning rate") if t not in titles]
    if left_out:  # what could not fit is named, not silently dropped
        note = " ".join(lines[-2:])
        assert f"no room for: {', '.join(left_out)}" in note
    else:
        assert "no room" not in out
    if height >= 37:
        assert titles == ["loss", "accuracy", "learning rate"]


def test_terminal_panels_grow_with_the_height(tmp_path, capsys):
    def panel_rows(height: int) -> int:
        _, out, _ = cli_output(capsys, "plot", fake_run(tmp_path / str(height), RUN_ID), "--terminal",
                        "--width", "80", "--height", height, "--metrics", "loss")
        return sum(1 for line in out.splitlines() if line.rstrip().endswith(("│", "┤")))

    assert panel_rows(14) < panel_rows(24) < panel_rows(40)


def test_a_terminal_comparison_tells_runs_apart_without_color(tmp_path):
    rows = (FAKE_RUN / "log.csv").read_text().splitlines()
    # A second run whose losses are twice as high: its curve lies elsewhere.
    doubled = [rows[0]] + [
        ",".join(c if i in (0, 1, 2, 4) else str(float(c) * 2) for i, c in enumerate(r.split(",")))
        for r in rows[1:]
    ]
    first = fake_run(tmp_path, "20261121-153012-a")
    second = fake_run(tmp_path, "20261121-153013-b", csv="\n".join(doubled) + "\n")
    runs = load_runs([first, second])
    text = render(runs, select_families(all_families(runs), ["loss"]), width=90, height=40,
                  color=False)
    (one_train, one_val), (two_train, two_val) = RUN_GLYPHS[:2]
    assert len({one_train, one_val, two_train, two_val}) == 4
    # The key names each glyph; the panel draws every one of them.
    for glyph, name in ((one_train, "[1] loss"), (one_val, "[1] val_loss"),
                        (two_train, "[2] loss"), (two_val, "[2] val_loss")):
        assert f"{glyph} {name}" in text
    panel = "\n".join(line for line in text.splitlines() if "│" in line or "┤" in line)
    assert all(glyph in panel for glyph in (one_train, one_val, two_train, two_val))


def test_terminal_drawing_survives_gaps_single_rows_and_comparisons(tmp_path):
    gappy = tmp_path / "gappy.csv"
    gappy.write_text("epoch,loss,val_loss,lr\n0,1.0,nan,0.1\n1,inf,0.9,0\n2,0.5,NA,0.05\n")
    single = tmp_path / "single.csv"
    single.write_text("epoch,loss,lr\n0,0.7,0.01\n")
    # plotext's native code aborts the whole process on a NaN; reaching the asserts is the test.
    runs = load_runs([gappy, single])
    text = render(runs, all_families(runs), width=90, height=40)
    assert "Comparison of 2 runs" in text
    assert "[1] gappy" in text and "[2] single" in text
    assert "[1] loss" in text and "[2] loss" in text
    colored = render(runs, all_families(runs), width=90, height=40, color=True)
    assert "\x1b[" in colored


def test_integer_ticks_stay_whole_and_few():
    assert integer_ticks(1, 5, 10) == [1, 2, 3, 4, 5]
    assert integer_ticks(1, 30, 7) == [5, 10, 15, 20, 25, 30]
    assert integer_ticks(1, 1, 7) == [1]
    assert all(len(integer_ticks(1, n, 7)) <= 7 for n in range(1, 500))


# --watch


def test_watch_of_a_finished_run_says_so_and_draws_once(tmp_path, capsys):
    run = fake_run(tmp_path, RUN_ID)
    code, out, err = cli_output(capsys, "plot", run, "--terminal", "--watch",
                         "--interval", "0.05", "--width", "90", "--height", "40")
    assert code == 0
    assert out.count(f"{RUN_ID}: stopped early") == 1
    assert "Ctrl-C" not in out + err  # nothing will change: no promise to watch it
    assert err == f"{run} has finished (stopped early): drawing it once, not watching\n"


def test_watch_redraws_as_a_running_training_appends_rows(tmp_path, capsys, monkeypatch):
    import cbrun.plotting.watch as watch_module

    rows = (FAKE_RUN / "log.csv").read_text().splitlines(keepends=True)
    run = fake_run(tmp_path, RUN_ID, csv="".join(rows[:4]), status="running", pid=os.getpid(),
                   host=socket.gethostname(), stopped_early_at=None, best=None, segments=None)
    waits = []

    def train_one_step(seconds):
        # Each wait between polls, the "training" appends an epoch; after two it finishes
        # the way cbrun does: rows first, status last.
        waits.append(seconds)
        if len(waits) <= 2:
            with (run / "log.csv").open("a") as fh:
                fh.write(rows[3 + len(waits)])
        else:
            data = json.loads((run / "run.json").read_text())
            data["status"] = "completed"
            (run / "run.json").write_text(json.dumps(data))

    monkeypatch.setattr(watch_module, "pause", train_one_step)
    code, out, _ = cli_output(capsys, "plot", run, "--terminal", "--watch", "--interval", "0.5",
                       "--width", "90", "--height", "40", "--metrics", "loss")
    assert code == 0
    assert waits == [0.5, 0.5, 0.5]
    headers = [line for line in out.splitlines() if line.startswith(RUN_ID)]
    assert [h.split(" · best")[0] for h in headers] == [
        f"{RUN_ID}: running · 3/40 epochs",
        f"{RUN_ID}: running · 4/40 epochs",
        f"{RUN_ID}: running · 5/40 epochs",
        f"{RUN_ID}: completed · 5/40 epochs",
    ]
    # The last frame is drawn once the run has finished: it says so instead of "watching".
    footers = [line.split("; ", 1)[1] for line in out.splitlines() if line.startswith("updated ")]
    assert footers == ["watching, Ctrl-C to stop"] * 3 + ["the run has finished"]


def test_watch_stops_after_max_refreshes_while_the_run_goes_on(tmp_path, capsys, monkeypatch):
    import cbrun.plotting.watch as watch_module

    run = fake_run(tmp_path, RUN_ID, status="running", pid=os.getpid(), host=socket.gethostname())
    monkeypatch.setattr(watch_module, "pause", lambda seconds: None)
    code, out, _ = cli_output(capsys, "plot", run, "--terminal", "--watch", "--max-refreshes", "5",
                       "--width", "90", "--height", "40")
    assert code == 0
    assert out.count(f"{RUN_ID}: running") == 1  # nothing changed: drawn once, not five times


def test_watch_waits_for_a_run_with_no_rows_and_can_be_bounded(tmp_path, capsys,
                                                               monkeypatch):
    import cbrun.plotting.watch as watch_module

    run = fake_run(tmp_path, RUN_ID, status="running", pid=os.getpid(), host=socket.gethostname())
    (run / "log.csv").unlink()
    waits: list[float] = []
    monkeypatch.setattr(watch_module, "pause", waits.append)
    code, out, err = cli_output(capsys, "plot", run, "--watch", "--interval", "0.5",
                         "--max-refreshes", "3")
    assert (code, out) == (0, ""), err
    assert waits == [0.5, 0.5]  # three polls, a wait between each
    # A run directory whose training has not finished epoch 1: no "is it a run directory?".
    assert err == f"{run}: waiting for the first epoch\n"  # said once, not at every poll


def test_watch_rewrites_the_image_file(tmp_path, capsys):
    run = fake_run(tmp_path, RUN_ID, status="running", pid=os.getpid(), host=socket.gethostname())
    code, out, _ = cli_output(capsys, "plot", run, "--watch", "-o", tmp_path / "w.png",
                       "--max-refreshes", "1")
    assert code == 0 and out.startswith(f"wrote {tmp_path / 'w.png'} (")
    assert_not_blank(tmp_path / "w.png")


def test_watch_of_a_typo_fails_at_once(tmp_path, capsys):
    code, _, err = cli_output(capsys, "plot", tmp_path / "nope", "--watch", "--terminal")
    assert code == 2 and "no such file or directory" in err


def test_watch_of_a_run_that_ended_without_rows_reports_it(tmp_path, capsys):
    run = fake_run(tmp_path, RUN_ID, status="failed")
    (run / "log.csv").unlink()
    code, _, err = cli_output(capsys, "plot", run, "--watch", "--interval", "0.05")
    assert code == 2
    assert err.splitlines()[-1] == f"error: {run} has no log.csv: no epoch has been logged"


# The light commands stay light


@pytest.mark.parametrize(
    "args",
    [
        ["plot", "{run}", "-o", "{tmp}/p.png"],
        ["plot", "{run}", "--terminal", "--width", "80", "--height", "30"],
        ["runs", "{tmp}"],
        ["runs", "{tmp}", "--json"],
    ],
)
def test_plot_and_runs_do_not_import_tensorflow(tmp_path, args):
    run = fake_run(tmp_path, RUN_ID)
    result = run_cbrun([a.format(run=run, tmp=tmp_path) for a in args], cwd=ROOT)
    assert result.codes == [0] and result.heavy == [], result.commands

