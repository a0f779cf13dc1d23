"""A Weights & Biases run fed by a TrackingView. wandb is imported here only."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import string
import subprocess
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from cbrun.config.tracking import WandbConfig
from cbrun.run.record import WandbRun
from cbrun.tracking.stores import StoreUnavailable, server_problem

# W&B's folders outside `dir=`, each sent into <run dir>/wandb/ unless the user chose it.
_DIRS = {"WANDB_CACHE_DIR": "cache", "WANDB_CONFIG_DIR": "config", "WANDB_DATA_DIR": "data",
         "WANDB_ARTIFACT_DIR": "artifacts"}
_SET_BY_US: set[str] = set()


def _import_inside(run_dir: Path) -> None:
    """Point W&B's folders into the run directory, then import wandb.

    The environment is read by wandb and by the wandb-core service it starts (whose debug
    log goes to the cache folder). Importing wandb makes two temp folders (wandb-media,
    wandb-artifacts) that it does not always remove; made under the run directory, they
    stay inside it."""
    where = run_dir.resolve() / "wandb"
    for var, sub in _DIRS.items():
        if not os.environ.get(var) or var in _SET_BY_US:
            os.environ[var] = str(where / sub)
            _SET_BY_US.add(var)
    temp = where / "tmp"
    temp.mkdir(parents=True, exist_ok=True)
    saved = tempfile.tempdir
    tempfile.tempdir = str(temp)
    try:
        import wandb
        import wandb.sdk.artifacts.artifact
        import wandb.sdk.data_types._private  # noqa: F401
    finally:
        tempfile.tempdir = saved


class WandbSink:
    name = "wandb"
    title = "W&B"

    def __init__(self, config: WandbConfig, run_dir: Path):
        self.config = config
        self.run_dir = run_dir
        self.run: Any = None

    quiet = staticmethod(nullcontext)  # W&B is silenced by its settings (open)

    def warm(self, state: WandbRun) -> None:
        _import_inside(self.run_dir)

    def open(self, state: WandbRun) -> None:
        _import_inside(self.run_dir)
        import wandb

        run_id = state.run_id or _new_id()
        state.run_id = run_id  # before init: a resume after a failed start keeps the id
        # symlink=False: no links in the run dir (latest-run, debug.log), which resume
        # refuses (cbrun/run/runguard.py).
        quiet = wandb.Settings(silent=True, console="off", disable_git=True, save_code=False,
                               x_disable_stats=True, x_disable_machine_info=True,
                               symlink=False)
        # W&B prints through its process-wide setup, not init's
        setup = wandb.setup(settings=quiet)
        if self.config.mode == "online":
            # wandb.init waits 90 s for a server that refuses connections: ask it once.
            problem = server_problem(str(setup.settings.base_url))
            if problem:
                raise StoreUnavailable(problem)
        try:
            self.run = wandb.init(
                project=self.config.project, entity=self.config.entity, mode=self.config.mode,
                name=self.config.name or self.run_dir.name, id=run_id, resume="allow",
                dir=str(self.run_dir.resolve()),  # offline files land in <run dir>/wandb/
                settings=quiet,
            )
        finally:
            # wandb-core links its log into the run even when init fails; a link there
            # would stop the run (cbrun/run/runguard.py), not just the tracker.
            _drop_links(self.run_dir / "wandb")
        state.mode = self.config.mode
        state.url = self.run.url if self.config.mode == "online" else None
        if self.config.mode == "offline":
            state.offline_dir = Path(self.run.dir).parent.relative_to(
                self.run_dir.resolve()).as_posix()

    def sent_steps(self) -> set[int] | None:
        """Offline: the epochs that the files of earlier processes of this run hold, read
        with wandb-core's own reader (the count in run.json can be ahead of them: records
        still on their way to the file die with a killed process). Online: None, and the
        view goes by its count."""
        if self.config.mode != "offline":
            return None
        import wandb

        reader = Path(wandb.__file__).parent / "bin" / "wandb-core"
        current = Path(self.run.dir).parent.resolve()
        steps: set[int] = set()
        for file in (self.run_dir / "wandb").glob(f"offline-run-*-{self.run.id}*/run-*.wandb"):
            if file.parent.resolve() == current:
                continue
            try:
                result = subprocess.run(
                    [str(reader), "leet", "inspect", "-json", "-no-observability",
                     "-run-file", str(file)], capture_output=True, text=True, timeout=120,
                    check=True)
            except (OSError, subprocess.SubprocessError):
                return None  # a wandb without this reader: the view's count decides
            for line in result.stdout.splitlines():
                record = json.loads(line) if line.strip() else {}
                if record.get("type") == "history":
                    steps.add(int(record["history"]["step"]["num"]))
        return steps

    def log_params(self, params: dict[str, str]) -> None:
        self.run.config.update(params, allow_val_change=True)

    def log_epoch(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log({**metrics, "epoch": step}, step=step, commit=True)

    def log_epochs(self, epochs: list[tuple[int, dict[str, float]]]) -> None:
        for step, metrics in epochs:
            self.log_epoch(step, metrics)

    def log_summary(self, metrics: dict[str, float], tags: dict[str, str], step: int) -> None:
        self.run.summary.update({**metrics, **tags})

    def log_text(self, name: str, text: str) -> None:
        self.run.summary[Path(name).stem] = text.splitlines()

    def log_file(self, path: Path) -> None:
        # A copy in the W&B run's files folder, saved from there: run.save would otherwise
        # hard-link the run's own file (log.csv), and resume refuses hard links.
        files = Path(self.run.dir)
        copy = files / path.relative_to(self.run_dir)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        self.run.save(str(copy), base_path=str(files), policy="now")

    def end(self, status: str) -> None:
        # W&B has no "killed": a non-zero exit code shows the run as failed.
        ok = status in ("completed", "stopped_early", "pruned")
        self.run.finish(exit_code=0 if ok else 130 if status == "interrupted" else 1)
        _drop_links(self.run_dir / "wandb")


def _drop_links(folder: Path) -> None:
    """wandb-core links logs/debug-core.log to its log in the cache folder whatever the
    settings say; resume refuses links in a run dir (cbrun/run/runguard.py), and the log itself
    is kept in wandb/cache/."""
    for path in folder.rglob("*"):
        if path.is_symlink():
            path.unlink()


def _new_id() -> str:
    """Eight lowercase letters and digits, the form of W&B's own run ids."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))
