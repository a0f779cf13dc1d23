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
from pathlib import Path

import pytest

from cbrun.cli import main
from cbrun.plotting.figure import build_figure
from cbrun.plotting.inputs import all_families, load_runs, parse_metrics, select_families
from cbrun.plotting.terminal import integer_ticks, render

ROOT = Path(__file__).resolve().parents[1]
DIGITS = Path(__file__).parent / "data" / "plot" / "digits"
RUN_ID = "20261121-153012-digits-mlp"


def make_run(root: Path, run_id: str = RUN_ID, csv: str | None = None, **run_json) -> Path:
    """A run directory like `cbrun train` leaves: the real digits log.csv (or `csv`) and
    its run.json, with keys replaced by `run_json` (None removes a key)."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    if csv is None:
        shutil.copy(DIGITS / "log.csv", run_dir / "log.csv")
    else:
        (run_dir / "log.csv").write_text(csv)
    data = json.loads((DIGITS / "run.json").read_text())
    data["id"] = run_id
    for key, value in run_json.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    (run_dir / "run.json").write_text(json.dumps(data, indent=2))
    return run_dir


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run `cbrun ARGS` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


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
    fig = figure_of(make_run(tmp_path))
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
    run = make_run(tmp_path, monitor={"name": "val_accuracy", "mode": "max"}, best=None)
    axes = panels(figure_of(run))
    (best,) = by_gid(axes["accuracy"], "best")
    assert list(best.get_xdata()) == [10]  # val_accuracy peaks at 0.8972 in epoch 10
    assert by_gid(axes["loss"], "best") == []


def test_the_real_run_draws_what_run_json_says(real_run, tmp_path):
    """`real_run` (tests/conftest.py) is a run that `cbrun train` made and finished."""
    info = json.loads((real_run / "run.json").read_text())
    fig = figure_of(real_run)
    axes = panels(fig)
    assert "loss" in axes and "learning rate" in axes
    assert axes["learning rate"].get_yscale() == "log"
    lines = by_gid(axes["loss"], "series")
    assert [l.get_label() for l in lines][:1] == ["loss"]
    assert len(lines[0].get_xdata()) == info["epochs_done"]
    monitor = (info.get("monitor") or {}).get("name")
    if info.get("best") and monitor:
        family = monitor.removeprefix("val_")
        (best,) = by_gid(axes[family.replace("_", " ")], "best")
        assert best.get_xdata()[0] == info["best"]["epoch"]
    if info.get("stopped_early_at"):
        assert by_gid(axes["loss"], "early_stop")[0].get_xdata()[0] == info["stopped_early_at"]
    out = tmp_path / "real.png"
    fig.savefig(out)
    assert_not_blank(out)


def test_the_png_is_written_beside_the_csv_and_is_not_blank(tmp_path, capsys):
    run = make_run(tmp_path)
    code, out, err = cli(capsys, "plot", run / "log.csv")
    assert (code, err) == (0, "")
    png = run / "log.png"
    assert out.strip() == f"wrote {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_not_blank(png)


def test_output_can_be_another_path_and_format(tmp_path, capsys):
    out_file = tmp_path / "curves.svg"
    code, out, _ = cli(capsys, "plot", make_run(tmp_path), "-o", out_file)
    assert (code, out) == (0, f"wrote {out_file}\n")
    assert out_file.read_text().lstrip().startswith("<?xml")
    assert "<svg" in out_file.read_text()[:2000]


def test_a_comparison_draws_one_line_per_run_and_column(tmp_path, capsys):
    first = make_run(tmp_path / "runs", "20261121-153012-digits-mlp")
    second = make_run(tmp_path / "runs", "20261122-101500-digits-wide",
                      csv=(DIGITS / "log.csv").read_text().replace(",0.0", ",0.02"))
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

    code, out, _ = cli(capsys, "plot", first, second)
    assert code == 0
    assert out.strip() == f"wrote {tmp_path / 'runs' / 'compare.png'}"
    assert_not_blank(tmp_path / "runs" / "compare.png")


def test_a_comparison_leaves_out_a_run_with_no_rows_yet(tmp_path, capsys):
    good = make_run(tmp_path, "20261121-153012-a")
    empty = make_run(tmp_path, "20261121-153013-b", csv="")
    code, out, err = cli(capsys, "plot", good, empty, "-o", tmp_path / "c.png")
    assert (code, out) == (0, f"wrote {tmp_path / 'c.png'}\n")
    assert "20261121-153013-b" in err and "left out of the comparison" in err


@pytest.mark.parametrize(
    "metrics, titles",
    [
        (["loss"], ["loss"]),
        (["val_accuracy,lr"], ["accuracy", "learning rate"]),
        (["learning_rate", "loss"], ["learning rate", "loss"]),
    ],
)
def test_metrics_picks_the_families(tmp_path, metrics, titles):
    assert list(panels(figure_of(make_run(tmp_path), metrics=metrics))) == titles


def test_an_unknown_metric_is_a_usage_error_with_a_suggestion(tmp_path, capsys):
    code, _, err = cli(capsys, "plot", make_run(tmp_path), "--metrics", "accuracy,val_acc")
    assert code == 2
    assert "no metric 'val_acc'" in err and "did you mean 'val_accuracy'" in err


# Bad input: a clear message, or a drawing of what makes sense


@pytest.mark.parametrize(
    "content, code, message",
    [
        ("", 1, "is empty: no epoch has been logged yet"),
        ("epoch,accuracy,learning_rate,loss,val_accuracy,val_loss\n", 1,
         "has a header but no rows: no epoch has been logged yet"),
        ("when,who\nmonday,me\n", 1, "has no numeric column to plot (columns: when, who)"),
    ],
)
def test_a_csv_with_nothing_to_draw_exits_with_a_message(tmp_path, capsys, content, code, message):
    path = tmp_path / "log.csv"
    path.write_text(content)
    assert cli(capsys, "plot", path) == (code, "", f"error: {path} {message}\n")
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
    code, _, err = cli(capsys, "plot", tmp_path)
    assert code == 2 and "has no log.csv" in err
    make_run(tmp_path / "runs")
    code, _, err = cli(capsys, "plot", tmp_path / "runs")
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
    assert cli(capsys, "plot", path)[0] == 0
    assert_not_blank(tmp_path / "log.png")


def test_a_single_row_draws_visible_points(tmp_path, capsys):
    path = tmp_path / "log.csv"
    path.write_text("epoch,learning_rate,loss,val_loss\n0,0.001,0.9,1.1\n")
    axes = panels(figure_of(path))
    for line in by_gid(axes["loss"], "series"):
        assert line.get_markevery() == [0]  # one point and no line: it needs a dot
    assert axes["learning rate"].get_yscale() == "log"
    assert cli(capsys, "plot", path)[0] == 0


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
    code, out, err = cli(capsys, "plot", path)
    assert (code, out) == (0, f"wrote {tmp_path / 'history.png'}\n")
    assert "has no 'epoch' column: numbering its rows from 1" in err
    assert (tmp_path / "history.png").exists()


def test_a_foreign_csv_draws_its_numeric_columns(tmp_path, capsys):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch;time;mse;val_mse;note\n0;10:00;4,0;5,0;start\n1;10:01;2,0;3,5;\n")
    axes = panels(figure_of(path))
    assert list(axes) == ["mse"]
    assert [l.get_label() for l in by_gid(axes["mse"], "series")] == ["mse", "val_mse"]
    assert cli(capsys, "plot", path)[0] == 0


def test_an_unreadable_run_json_plots_without_marks(tmp_path, capsys):
    run = make_run(tmp_path)
    (run / "run.json").write_text('{"id": "x", "status": ')
    code, _, err = cli(capsys, "plot", run, "-o", tmp_path / "p.png")
    assert code == 0 and "not valid JSON" in err
    axes = panels(figure_of(run))
    assert by_gid(axes["loss"], "early_stop") == []
    assert len(by_gid(axes["loss"], "best")) == 1  # from the log, with the default monitor


def test_a_run_json_missing_keys_still_plots(tmp_path, capsys):
    run = tmp_path / "bare"
    run.mkdir()
    shutil.copy(DIGITS / "log.csv", run / "log.csv")
    (run / "run.json").write_text('{"status": "running", "segments": "garbage", "best": 3}')
    fig = figure_of(run)
    assert "bare" in fig.get_suptitle() and "running" in fig.get_suptitle()
    assert cli(capsys, "plot", run)[0] == 0


def test_a_column_with_no_finite_value_gets_an_empty_panel(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss,lr\n0,nan,0\n1,inf,0\n")
    axes = panels(figure_of(path))
    assert "no finite values logged" in [t.get_text() for t in axes["loss"].texts]
    assert axes["lr"].get_yscale() == "linear"  # nothing positive to put on a log scale


@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "plot.bmpx"], "'.bmpx' is not an image format"),
        (["-o", "noext"], "no extension is not an image format"),
        (["-o", "missing/dir/p.png"], "does not exist"),
        (["--terminal", "-o", "x.png"], "choose one"),
    ],
)
def test_bad_output_options_are_usage_errors(tmp_path, capsys, monkeypatch, args, message):
    run = make_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "plot", run, *args)
    assert code == 2 and message in err


# In the terminal


def test_terminal_drawing_shows_panels_keys_and_marks(tmp_path, capsys):
    code, out, err = cli(capsys, "plot", make_run(tmp_path), "--terminal",
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
    assert max(len(line) for line in lines[1:]) <= 100


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


def test_watch_draws_once_and_stops_when_the_run_is_over(tmp_path, capsys):
    code, out, _ = cli(capsys, "plot", make_run(tmp_path), "--terminal", "--watch",
                       "--interval", "0.05", "--width", "90", "--height", "40")
    assert code == 0
    assert out.count(f"{RUN_ID}: stopped early") == 1
    assert "watching, Ctrl-C to stop" in out


def test_watch_redraws_as_a_running_training_appends_rows(tmp_path, capsys, monkeypatch):
    import cbrun.plotting.watch as watch_module

    rows = (DIGITS / "log.csv").read_text().splitlines(keepends=True)
    run = make_run(tmp_path, csv="".join(rows[:4]), status="running", pid=os.getpid(),
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
    code, out, _ = cli(capsys, "plot", run, "--terminal", "--watch", "--interval", "0.5",
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
    assert out.count("watching, Ctrl-C to stop") == 4


def test_watch_stops_after_max_refreshes_while_the_run_goes_on(tmp_path, capsys, monkeypatch):
    import cbrun.plotting.watch as watch_module

    run = make_run(tmp_path, status="running", pid=os.getpid(), host=socket.gethostname())
    monkeypatch.setattr(watch_module, "pause", lambda seconds: None)
    code, out, _ = cli(capsys, "plot", run, "--terminal", "--watch", "--max-refreshes", "5",
                       "--width", "90", "--height", "40")
    assert code == 0
    assert out.count(f"{RUN_ID}: running") == 1  # nothing changed: drawn once, not five times


def test_watch_waits_for_a_run_with_no_rows_and_can_be_bounded(tmp_path, capsys):
    run = make_run(tmp_path, status="running", pid=os.getpid(), host=socket.gethostname())
    (run / "log.csv").unlink()
    code, out, err = cli(capsys, "plot", run, "--watch", "--interval", "0.05",
                         "--max-refreshes", "3")
    assert (code, out) == (0, ""), err
    assert err.count("waiting for rows") == 1  # said once, not at every poll


def test_watch_rewrites_the_image_file(tmp_path, capsys):
    code, out, _ = cli(capsys, "plot", make_run(tmp_path), "--watch", "-o", tmp_path / "w.png")
    assert code == 0 and out.startswith(f"wrote {tmp_path / 'w.png'} (")
    assert_not_blank(tmp_path / "w.png")


def test_watch_of_a_typo_fails_at_once(tmp_path, capsys):
    code, _, err = cli(capsys, "plot", tmp_path / "nope", "--watch", "--terminal")
    assert code == 2 and "no such file or directory" in err


def test_watch_of_a_run_that_ended_without_rows_reports_it(tmp_path, capsys):
    run = make_run(tmp_path, status="failed")
    (run / "log.csv").unlink()
    code, _, err = cli(capsys, "plot", run, "--watch", "--interval", "0.05")
    assert code == 2
    assert err.splitlines()[-1] == f"error: {run} has no log.csv: is it a run directory?"


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
    run = make_run(tmp_path)
    argv = [a.format(run=run, tmp=tmp_path) for a in args]
    code = (
        "import sys\n"
        "from cbrun.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit as exc:\n    status = exc.code\n"
        "print('\\nRESULT', status, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.stdout.splitlines()[-1] == "RESULT 0 False False", result.stderr

