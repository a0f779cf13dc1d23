"""The sweep directory, runs/sweeps/<name>/, and its record sweep.json.

A sweep directory and its Optuna study are bound by the sweep's id, a random id made with
the study (or taken from it, when a worker on another machine joins the study): sweep.json
and the study's user attributes record it, and so does each trial's run.json (`sweep.id`).
A directory whose study is gone or belongs to another sweep is refused (`study.open_study`),
and a trial run directory of another id is never taken as a trial's result.

Lower floor: no Optuna and no TensorFlow here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from cbrun.errors import UsageError
from cbrun.run.record import RunRecord
from cbrun.run.rundir import atomic_write_bytes, iso, utc_now

SWEEP_JSON = "sweep.json"
SWEEP_COPY = "sweep.yaml"
TRIALS_DIR = "trials"
LOGS_DIR = "logs"


class SweepRecord(BaseModel):
    """The keys of sweep.json that cbrun reads back; the others are kept as they are."""

    model_config = ConfigDict(extra="allow", strict=True)

    id: str
    name: str
    base: str
    storage: str
    sweep_sha256: str
    base_sha256: str


def read_record(sweep_dir: Path) -> dict[str, Any]:
    """sweep.json, checked: anything cbrun did not write is one line that says what to do."""
    path = sweep_dir / SWEEP_JSON
    fix = ("it is the sweep's record, written by `cbrun sweep`: restore it, or start the "
           "sweep anew under another `name` (the trials here stay as they are)")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{sweep_dir} is not a sweep directory (no {SWEEP_JSON}); give a "
                         f"folder that `cbrun sweep` made, e.g. runs/sweeps/<name>") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is damaged: not UTF-8 text ({exc.reason} at byte "
                         f"{exc.start}); {fix}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is damaged: not valid JSON (line {exc.lineno}, column "
                         f"{exc.colno}: {exc.msg}); {fix}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is damaged: a JSON object was expected, it holds "
                         f"{json.dumps(data)[:40]}; {fix}")
    if "id" not in data and {"name", "base", "storage"} <= set(data):
        raise UsageError(f"{path} was written by an older cbrun, before a sweep directory "
                         "was bound to its study by an id, so cbrun cannot tell that the "
                         "study in the storage is this directory's: its trials stay as they "
                         "are (each is a run directory: cbrun runs, cbrun evaluate); start "
                         "the sweep again under another `name`")
    try:
        SweepRecord.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc']))}: "
                    + ("missing" if e["type"] == "missing" else e["msg"].lower())
                    for e in exc.errors()]
        raise UsageError(f"{path} is damaged ({'; '.join(problems)}); {fix}") from None
    return data


def new_record(loaded, sweep_id: str, shown_storage: str) -> dict[str, Any]:
    spec = loaded.spec
    return {"id": sweep_id, "name": spec.name, "created": iso(utc_now()),
            "sweep_file": str(loaded.path.resolve()),
            "sweep_sha256": hashlib.sha256(loaded.text.encode()).hexdigest(),
            "base": str(loaded.base_path.resolve()), "base_sha256": loaded.base_sha256,
            "storage": shown_storage, "study": spec.name, "metric": loaded.metric,
            "direction": loaded.direction, "trials": spec.trials, "sampler": spec.sampler,
            "pruner": spec.pruner.model_dump(),
            "space": {k: v.model_dump() for k, v in spec.space.items()},
            "status": "running", "trials_done": 0}


def save_record(sweep_dir: Path, record: dict[str, Any], status: str,
                done: int | None = None) -> None:
    record["status"] = status
    record["updated"] = iso(utc_now())
    if done is not None:
        record["trials_done"] = done
    atomic_write_bytes(sweep_dir / SWEEP_JSON, (json.dumps(record, indent=2) + "\n").encode())


def check_same(record: dict[str, Any], loaded, sweep_dir: Path) -> None:
    """Going on with a sweep means the same sweep: same file, same base config."""
    changed = []
    if hashlib.sha256(loaded.text.encode()).hexdigest() != record["sweep_sha256"]:
        changed.append(f"the sweep file differs from {sweep_dir / SWEEP_COPY}")
    if loaded.base_sha256 != record["base_sha256"]:
        changed.append(f"the base config {loaded.base_path} changed since the sweep began")
    if changed:
        raise UsageError(f"{sweep_dir} holds sweep {record['name']!r}, and "
                         f"{'; '.join(changed)}; trials must all come from one sweep file "
                         f"and base config: restore them, or give the new sweep another "
                         f"`name`")


def trial_ids(sweep_dir: Path) -> set[str | None]:
    """The sweep ids that the run directories under trials/ name (None for one whose
    run.json cannot be read or names no sweep): empty when no trial ran here."""
    found: set[str | None] = set()
    for path in (sweep_dir / TRIALS_DIR).glob("*/run.json"):
        try:
            sweep = RunRecord.load(path.parent).file.sweep
        except UsageError:
            sweep = None
        found.add(sweep.id if sweep else None)
    return found


def trial_run_dir(sweep_dir: Path, number: int, sweep_id: str) -> Path | None:
    """Trial `number`'s run directory: the newest `*-t<number>` whose run.json names this
    sweep's id. One of another sweep (a study deleted and made anew, a folder copied in),
    or whose run.json cannot be read, is never a trial's result."""
    for path in sorted((sweep_dir / TRIALS_DIR).glob(f"*-t{number:03d}"), reverse=True):
        try:
            sweep = RunRecord.load(path).file.sweep
        except UsageError:
            continue
        if sweep is not None and sweep.id == sweep_id and sweep.trial == number:
            return path
    return None
