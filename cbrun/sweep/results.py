"""What a sweep found: the trials table, best.yaml, Optuna's plots and the top trials'
curves, all written into the sweep directory."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import yaml

from cbrun.config.overrides import apply_overrides
from cbrun.config.yamlio import load_yaml_text
from cbrun.run.record import RunRecord
from cbrun.run.rundir import atomic_write_bytes
from cbrun.sweep.directory import trial_run_dir
from cbrun.sweep.load import Sweep, override

BEST_FILE = "best.yaml"
PLOTS = {  # file -> optuna.visualization.matplotlib function
    "history.png": "plot_optimization_history",
    "parallel.png": "plot_parallel_coordinate",
    "importances.png": "plot_param_importances",
}
TOP_FILE = "top.png"
STATES = {"COMPLETE": "completed", "PRUNED": "pruned", "RUNNING": "running", "FAIL": "failed",
          "WAITING": "waiting"}


def trial_rows(study, sweep_dir: Path, sweep_id: str) -> list[dict[str, Any]]:
    """One row per trial, by its first number: a trial Optuna retried (its worker was gone,
    or Ctrl-C stopped it) is shown as its latest attempt; `attempts` lists the study's
    numbers. Trials given up before they ran are left out."""
    from cbrun.sweep.sampler import first_number

    latest: dict[int, Any] = {}
    attempts: dict[int, list[int]] = {}
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("cancelled"):
            continue
        first = first_number(trial)
        attempts.setdefault(first, []).append(trial.number)
        if first not in latest or trial.number > latest[first].number:
            latest[first] = trial
    rows = []
    for first, trial in sorted(latest.items()):
        run_dir = trial_run_dir(sweep_dir, first, sweep_id)
        epochs = None
        if run_dir is not None:
            epochs = RunRecord.load(run_dir).epochs_done
        elif trial.intermediate_values:
            epochs = max(trial.intermediate_values)
        value = trial.value if trial.state.name == "COMPLETE" else (
            trial.intermediate_values[max(trial.intermediate_values)]
            if trial.intermediate_values else None)
        rows.append({
            "number": first,
            "status": STATES.get(trial.state.name, trial.state.name.lower()),
            "value": value,
            "epochs": epochs,
            "params": dict(trial.params),
            "run_dir": str(run_dir) if run_dir else None,
            "host": trial.user_attrs.get("host"),
            "attempts": sorted(attempts[first]),
        })
    return rows


def best_row(rows: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    done = [r for r in rows if r["status"] == "completed" and r["value"] is not None
            and math.isfinite(r["value"])]
    if not done:
        return None
    pick = max if direction == "maximize" else min
    return pick(done, key=lambda r: r["value"])


def write_best(sweep: Sweep, sweep_dir: Path, best: dict[str, Any]) -> Path:
    """The base config with the sweep's `set` and the best trial's parameters: a file that
    `cbrun train` takes as it is."""
    loaded = load_yaml_text(sweep.base_text, str(sweep.base_path))
    texts = [*sweep.spec.set, *(override(k, v) for k, v in best["params"].items())]
    data = apply_overrides(loaded, texts).data
    section = data.get("data")
    if isinstance(section, dict):
        # Data paths are relative to the config's folder; best.yaml lives elsewhere.
        for key in ("path", "validation_path"):
            if isinstance(section.get(key), str):
                section[key] = str((sweep.base_path.parent / section[key]).resolve())
    head = (f"# The best trial of sweep {sweep.spec.name!r}: trial {best['number']}, "
            f"{sweep.metric} = {best['value']:.6g} ({sweep.direction}).\n"
            f"# {sweep.base_path.name} with:\n"
            + "".join(f"#   --set {text}\n" for text in texts)
            + f"# Train it: cbrun train {sweep_dir / BEST_FILE}\n")
    path = sweep_dir / BEST_FILE
    atomic_write_bytes(path, (head + yaml.safe_dump(data, sort_keys=False)).encode())
    return path


def prepare_plots() -> None:
    """Everything `write_plots` and top.png pay for once per process, done ahead: the
    imports, and a throwaway figure drawn in memory (the fonts, the mathtext parser of
    the log axes' labels, the PNG writer). What the plots show does not change."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm  # noqa: F401

    figure = plt.figure(figsize=(2, 2))
    axes = figure.add_subplot()
    axes.set_yscale("log")
    axes.plot([1, 2], [0.01, 1], label="x")
    axes.legend()
    figure.tight_layout()
    figure.savefig(io.BytesIO(), format="png", dpi=50)
    plt.close(figure)


def write_plots(study, sweep_dir: Path, metric: str) -> tuple[list[Path], list[str]]:
    """Optuna's own matplotlib plots; returns (written, skipped with the reason)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    finished = [t for t in study.get_trials(deepcopy=False)
                if t.state == optuna.trial.TrialState.COMPLETE]
    written, skipped = [], []
    for name, function in PLOTS.items():
        if not finished or (name == "importances.png" and len(finished) < 2):
            skipped.append(f"{name}: needs {'two completed trials' if finished else 'a completed trial'}")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental" warnings, once per call
            try:
                ax = getattr(ovm, function)(study, target_name=metric)
            except (ValueError, RuntimeError) as exc:
                # Optuna refuses some studies (importances when every trial has one value);
                # the sweep's results must not be lost for a plot.
                skipped.append(f"{name}: Optuna could not draw it ({exc})")
                continue
        figure = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
        figure.set_size_inches(10, 6)
        figure.tight_layout()
        path = sweep_dir / name
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written, skipped


def top_runs(rows: list[dict[str, Any]], direction: str, k: int) -> list[Path]:
    """The run directories of the k best trials that ran here (completed ones first)."""
    ranked = [r for r in rows if r["run_dir"] and r["value"] is not None
              and math.isfinite(r["value"]) and r["status"] in ("completed", "pruned")]
    sign = -1 if direction == "maximize" else 1
    ranked.sort(key=lambda r: (r["status"] != "completed", sign * r["value"]))
    return [Path(r["run_dir"]) for r in ranked[:k]]
