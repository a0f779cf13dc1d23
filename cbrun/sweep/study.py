"""Optuna, seen from cbrun: the storage, the study (bound to its sweep directory), its
sampler and pruner.

Optuna is imported inside each function (an optional extra, and `cbrun --help` must stay
light); it never imports TensorFlow.
"""

from __future__ import annotations

import os
import random
import time
import uuid
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cbrun.errors import UsageError

STUDY_FILE = "study.db"
# A trial process and the workers write to one SQLite file at once; SQLite makes a writer
# wait for the lock this long (seconds) before it gives up with "database is locked".
SQLITE_TIMEOUT_S = 120
# The storage URL for a trial process; passed in the environment so a password in it is
# never written into run.json or sweep.json.
STORAGE_ENV = "CBRUN_SWEEP_STORAGE"
# The study trial a trial process reports to, when it is not the trial's own number (a
# retry of it, which Optuna numbers anew).
ATTEMPT_ENV = "CBRUN_SWEEP_ATTEMPT"
# Optuna's heartbeats: a worker records one for each trial it runs every HEARTBEAT_S; a
# trial without one for GRACE_S is taken for the trial of a worker that is gone (kill -9,
# a reboot, a lost machine). Generous next to the interval: a live worker whose trial were
# failed would find its run directory taken over.
# The tests that kill a worker shorten both through HEARTBEAT_ENV (whole seconds, as Optuna
# takes them), to see its trials go stale in seconds, not half a minute.
HEARTBEAT_ENV = "CBRUN_TEST_SWEEP_HEARTBEAT_S"
HEARTBEAT_S = int(os.environ.get(HEARTBEAT_ENV) or 5)
GRACE_S = 6 * HEARTBEAT_S
# The study's user attributes cbrun sets: the sweep's id, and what its trials search.
ID_ATTR = "cbrun_sweep_id"
SIGNATURE_ATTR = "cbrun_sweep"


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise UsageError("cbrun sweep needs Optuna, which is not installed: pip install "
                         "'cbrun[sweep]' (Optuna, and the PostgreSQL driver psycopg)") from None
    # cbrun says how each trial ended; Optuna's own lines (a trial failed, with the
    # traceback of the exception that told it so) would repeat it.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # Heartbeats and the retry of stale trials are marked experimental; cbrun relies on them.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def default_storage(sweep_dir: Path) -> str:
    return f"sqlite:///{(sweep_dir / STUDY_FILE).absolute()}"


def shown_storage(url: str) -> str:
    """The URL with its password replaced by ***: what is printed and recorded."""
    try:
        parts = urlsplit(url)
        if not parts.password:
            return url
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
    except ValueError:  # a malformed URL (a bad port, a broken IPv6 host): hide what follows
        head, _, rest = url.partition("://")
        return f"{head}://***@{rest.rpartition('@')[2]}" if "@" in rest else url
    netloc = f"{parts.username}:***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def open_storage(url: str, heartbeat: bool = False, must_exist: bool = False):
    """The RDB storage at `url`; with `heartbeat`, the one a worker runs trials with: a
    trial whose worker is gone is failed and queued again with the same parameters and the
    values it reported (`RetryHeartbeatStaleTrialCallback`). must_exist: a SQLite file
    that is not there is refused rather than made (it would hold no study)."""
    optuna = import_optuna()
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    shown = shown_storage(url)
    try:
        parsed = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
        raise UsageError(f"cannot open the study storage {shown}: {_first_line(exc)}; give "
                         "sqlite:///path.db or postgresql://user:password@host/db") from None
    if parsed.drivername.startswith("sqlite") and parsed.database in (None, "", ":memory:"):
        raise UsageError(f"the study storage {shown} is held in memory, where the trial "
                         "processes cannot reach it; give a file: sqlite:///path.db")
    if (must_exist and parsed.drivername.startswith("sqlite")
            and not Path(parsed.database).exists()):
        raise UsageError(f"the study storage {shown} does not exist (no file "
                         f"{parsed.database}): the sweep's study is not there; give the "
                         "storage it ran on with --storage URL, or start a new sweep under "
                         "another `name`")
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    else:
        kwargs["pool_pre_ping"] = True
    if url.startswith("postgresql://"):
        # SQLAlchemy's default PostgreSQL driver differs between its versions; use the one
        # `cbrun[sweep]` installs, psycopg (3).
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    beats: dict[str, Any] = {}
    if heartbeat:
        beats = {"heartbeat_interval": HEARTBEAT_S, "grace_period": GRACE_S,
                 "heartbeat_stale_trial_callback": retry_callback()}
    try:
        return _with_schema_retries(
            lambda: optuna.storages.RDBStorage(url, engine_kwargs=kwargs, **beats))
    except ImportError as exc:
        raise UsageError(f"--storage {shown} needs a database driver that is not installed "
                         f"({_first_line(exc)}); for PostgreSQL: pip install 'cbrun[sweep]' "
                         "(psycopg)") from None
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.OptunaError, ValueError,
            RuntimeError) as exc:
        # A server that does not answer, a file that is no database, tables of an Optuna
        # that is not this one ("optuna storage upgrade").
        raise UsageError(f"cannot open the study storage {shown}: {_first_line(exc)}"
                         ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _with_schema_retries(make, attempts: int = 5):
    """Workers started together on a new database all create Optuna's tables; all but one
    fail on the rows the first wrote (an IntegrityError). A moment later the tables are
    there and opening the storage just reads them."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return make()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError,
                sqlalchemy.exc.OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


def retry_callback():
    optuna = import_optuna()
    return optuna.storages.RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)


def make_pruner(spec: dict[str, Any]):
    """From the pruner's settings as the sweep file gives them (`{type: median, ...}`)."""
    optuna = import_optuna()
    if spec["type"] == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec["startup_trials"],
                                           n_warmup_steps=spec["warmup_epochs"])
    if spec["type"] == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=spec["min_epochs"],
                                              reduction_factor=spec["reduction_factor"])
    return optuna.pruners.NopPruner()


def storage_for_trial(shown: str) -> str:
    """The URL a trial process opens: the real one from its environment, else the one its
    run.json records (a resume run by hand, on a storage without a password)."""
    return os.environ.get(STORAGE_ENV) or shown


def open_study(sweep, storage, *, where: str, sweep_dir: Path, sweep_id: str | None,
               trial_ids: set[str | None], create: bool = True):
    """The sweep's study in `storage` and the sweep's id: (study, id).

    sweep_id: the id sweep.json records, None for a new sweep directory (which takes the
    study's id, or makes one with a new study); trial_ids: the ids its trial runs name.
    Refused: a study made by a sweep with another space or metric; a study of another id
    than the directory's; a study that is missing, or knows no id, while the directory
    holds trials (it was deleted and made anew, or this is another storage): those trials
    are not this study's, and its trial numbers would name them.
    """
    from cbrun.sweep.sampler import make_sampler

    optuna = import_optuna()
    spec = sweep.spec
    lost = (f"{sweep_dir} holds trials of sweep {spec.name!r}, but the study of that name in "
            f"{where} {{}}: the study was deleted or made anew, or this is not the storage the "
            f"sweep began with; give that storage with --storage URL, or start a new sweep "
            f"under another `name`")
    options = {"study_name": spec.name, "storage": storage, "pruner":
               make_pruner(spec.pruner.model_dump()), "sampler": make_sampler(spec)}
    made = False
    try:
        study = optuna.load_study(**options)
    except KeyError:
        if trial_ids:
            raise UsageError(lost.format("does not exist")) from None
        if not create:
            raise UsageError(f"the storage {where} holds no study {spec.name!r}; give the "
                             f"storage the sweep ran on with --storage URL") from None
        try:
            study = optuna.create_study(direction=sweep.direction, **options)
            made = True
        except optuna.exceptions.DuplicatedStudyError:  # another worker made it just now
            study = optuna.load_study(**options)
    found = study.user_attrs.get(ID_ATTR)
    if found is None and made:
        found = sweep_id or uuid.uuid4().hex
        study.set_user_attr(ID_ATTR, found)
    elif found is None and not trial_ids:
        found = _id_of_a_new_study(study)
    if found is None:
        if trial_ids:
            raise UsageError(lost.format("does not know this sweep (it holds no sweep id)"))
        if not create:
            return study, sweep_id
        # A study that an older cbrun made, or Optuna alone: it joins this sweep.
        study.set_user_attr(ID_ATTR, sweep_id or uuid.uuid4().hex)
        found = study.user_attrs[ID_ATTR]
    ours = {sweep_id} if sweep_id is not None else {i for i in trial_ids if i}
    if ours and found not in ours:
        mine = ", ".join(sorted(ours))
        raise UsageError(f"the study {spec.name!r} in {where} belongs to another sweep (id "
                         f"{found}) than {sweep_dir} (id {mine}): the study was deleted and "
                         f"made anew, or this is another storage; give the storage this "
                         f"sweep began with (--storage URL), or start a new sweep under "
                         f"another `name`")
    _check_signature(study, sweep, create)
    return study, found


def _id_of_a_new_study(study, wait_s: float = 5.0) -> str | None:
    """The worker that made a study names its id a moment after; a study without trials
    may be that new."""
    deadline = time.monotonic() + wait_s
    while not study.get_trials(deepcopy=False) and time.monotonic() < deadline:
        time.sleep(0.1)
        found = study.user_attrs.get(ID_ATTR)
        if found is not None:
            return found
    return study.user_attrs.get(ID_ATTR)


def _check_signature(study, sweep, create: bool) -> None:
    import json

    spec = sweep.spec
    signature = json.dumps({"space": {k: v.model_dump() for k, v in spec.space.items()},
                            "metric": sweep.metric, "direction": sweep.direction},
                           sort_keys=True)
    known = study.user_attrs.get(SIGNATURE_ATTR)
    if known is None and create:
        study.set_user_attr(SIGNATURE_ATTR, signature)
    elif known not in (None, signature):
        raise UsageError(f"the study {spec.name!r} in this storage belongs to a sweep with "
                         f"another space, metric or direction; give this sweep another name")
