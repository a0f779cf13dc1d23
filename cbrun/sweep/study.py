"""Optuna, seen from cbrun: the storage, the study, its sampler and pruner.

Optuna is imported inside each function (an optional extra, and `cbrun --help` must stay
light); it never imports TensorFlow.
"""

from __future__ import annotations

import os
import random
import time
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


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise UsageError("cbrun sweep needs Optuna, which is not installed: pip install "
                         "'cbrun[sweep]' (Optuna, and the PostgreSQL driver psycopg)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def default_storage(sweep_dir: Path) -> str:
    return f"sqlite:///{(sweep_dir / STUDY_FILE).absolute()}"


def shown_storage(url: str) -> str:
    """The URL with its password replaced by ***: what is printed and recorded."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    netloc = f"{parts.username}:***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def open_storage(url: str):
    optuna = import_optuna()
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    else:
        kwargs["pool_pre_ping"] = True
    if url.startswith("postgresql://"):
        # SQLAlchemy's default PostgreSQL driver differs between its versions; use the one
        # `cbrun[sweep]` installs, psycopg (3).
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        return _with_schema_retries(lambda: optuna.storages.RDBStorage(url, engine_kwargs=kwargs))
    except ImportError as exc:
        raise UsageError(f"--storage {shown_storage(url)} needs a database driver that is "
                         f"not installed ({exc}); for PostgreSQL: pip install "
                         "'cbrun[sweep]' (psycopg)") from None
    except Exception as exc:  # sqlalchemy's ArgumentError, OperationalError, ...
        import sqlalchemy.exc

        if isinstance(exc, sqlalchemy.exc.SQLAlchemyError | ValueError):
            raise UsageError(f"cannot open the study storage {shown_storage(url)}: "
                             f"{str(exc).splitlines()[0]}") from None
        raise


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


def make_sampler(kind: str, seed: int | None, grid: dict[str, list[Any]]):
    optuna = import_optuna()
    if kind == "grid":
        return optuna.samplers.GridSampler(grid, seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


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
