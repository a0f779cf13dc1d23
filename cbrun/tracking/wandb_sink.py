"""A Weights & Biases run fed by a TrackingView. wandb is imported here only."""

from __future__ import annotations

import json
import secrets
import string
import subprocess
from pathlib import Path
from typing import Any

from cbrun.config.tracking import WandbConfig


class WandbSink:
    name = "wandb"
    title = "W&B"

    def __init__(self, config: WandbConfig, run_dir: Path):
        self.config = config
        self.run_dir = run_dir
        self.run: Any = None

    def open(self, state: dict[str, Any]) -> None:
        import wandb

        run_id = state.get("run_id") or _new_id()
        state["run_id"] = run_id  # before init: a resume after a failed start keeps the id
        quiet = wandb.Settings(silent=True, console="off", disable_git=True, save_code=False,
                               x_disable_stats=True, x_disable_machine_info=True)
        wandb.setup(settings=quiet)  # W&B prints through its process-wide setup, not init's
        self.run = wandb.init(
            project=self.config.project, entity=self.config.entity, mode=self.config.mode,
            name=self.config.name or self.run_dir.name, id=run_id, resume="allow",
            dir=str(self.run_dir.resolve()),  # offline files land in <run dir>/wandb/
            settings=quiet,
        )
        state["mode"] = self.config.mode
        state["url"] = self.run.url if self.config.mode == "online" else None
        if self.config.mode == "offline":
            state["offline_dir"] = Path(self.run.dir).parent.relative_to(
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

    def log_summary(self, metrics: dict[str, float], tags: dict[str, str], step: int) -> None:
        self.run.summary.update({**metrics, **tags})

    def log_text(self, name: str, text: str) -> None:
        self.run.summary[Path(name).stem] = text.splitlines()

    def log_file(self, path: Path) -> None:
        self.run.save(str(path), base_path=str(self.run_dir), policy="now")

    def end(self, ok: bool) -> None:
        self.run.finish(exit_code=0 if ok else 1)


def _new_id() -> str:
    """Eight lowercase letters and digits, the form of W&B's own run ids."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))
