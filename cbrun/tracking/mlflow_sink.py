"""An MLflow run fed by a TrackingView. mlflow is imported here only, when a run uses it."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cbrun.config.tracking import MlflowConfig
from cbrun.run.record import MlflowRun
from cbrun.tracking.stores import (
    SQLITE,
    StoreUnavailable,
    absolute_location,
    absolute_uri,
    local_store,
    server_problem,
    store_problem,
)

# MLflow retries a request 7 times with a growing pause and waits 120 s for an answer: a
# server that is down would hold training for minutes at every epoch. A user's own
# setting of these wins.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
# cbrun's end of a run -> MLflow's; anything else is FAILED.
# A pruned sweep trial ended as planned: FINISHED, its tag cbrun.status says pruned.
END_STATUS = {"completed": "FINISHED", "stopped_early": "FINISHED", "pruned": "FINISHED",
              "interrupted": "KILLED"}
_BATCH = 100  # MLflow's limit on params (and tags) per log_batch
_METRICS_BATCH = 1000  # and on metrics


class MlflowSink:
    name = "mlflow"
    title = "MLflow"

    def __init__(self, config: MlflowConfig, run_dir: Path, config_dir: Path | None = None):
        self.config = config
        self.run_dir = run_dir
        self.config_dir = (config_dir or Path()).absolute()  # where relative paths start
        self.client: Any = None
        self._client_uri: str | None = None  # the store `client` was made for
        self.run_id: str | None = None

    @staticmethod
    @contextmanager
    def quiet() -> Iterator[None]:
        """MLflow logs a failing store's error with its traceback (and its table setup) on
        stderr; the view reports a failure in one line, so MLflow's log stays shut while
        cbrun calls it."""
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        import mlflow  # noqa: F401 - importing it sets its loggers' levels

        loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
        levels = [logger.level for logger in loggers]
        for logger in loggers:
            logger.setLevel(logging.CRITICAL + 1)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)

    def store_uri(self, state: MlflowRun, default: str) -> str:
        """The store this process uses: the config's URI, a relative path in it taken from
        the config's folder; without one, the store the run was opened in (run.json), else
        MLflow's default (`default`, from the current folder as MLflow reads it). A run.json
        of an older cbrun recorded a relative URI as it was written: that one is used as it
        was then, from the current folder."""
        given = self.config.tracking_uri
        if given is not None and given == state.tracking_uri:
            return given
        if given is not None:
            return absolute_uri(given, self.config_dir)
        if state.tracking_uri:
            return state.tracking_uri
        return absolute_uri(default, Path.cwd())

    def warm(self, state: MlflowRun) -> None:
        """A local store set up before the run opens it: MLflow's store modules
        (SQLAlchemy, Alembic: most of its cost) and the tables. A server (MLflow's, a
        database's) is first contacted by `open`, once."""
        import mlflow
        from mlflow import MlflowClient

        uri = self.store_uri(state, mlflow.get_tracking_uri())
        if local_store(uri) is not None and store_problem(uri) is None:
            with _one_engine_try(uri):
                _new_sqlite_store(uri)
                self.client, self._client_uri = MlflowClient(tracking_uri=uri), uri
        elif _database(uri):
            import mlflow.store.tracking.sqlalchemy_store

    def open(self, state: MlflowRun) -> None:
        import mlflow
        from mlflow import MlflowClient

        uri = self.store_uri(state, mlflow.get_tracking_uri())
        state.tracking_uri = uri
        problem = store_problem(uri) or server_problem(uri)
        if problem:
            raise StoreUnavailable(problem)
        if self.client is None or self._client_uri != uri:
            with _one_engine_try(uri):
                _new_sqlite_store(uri)
                self.client = MlflowClient(tracking_uri=uri)
        if state.run_id:
            self.run_id = state.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            return
        experiment = self.client.get_experiment_by_name(self.config.experiment)
        experiment_id = (experiment.experiment_id if experiment is not None else
                         self.client.create_experiment(
                             self.config.experiment, artifact_location=self._artifacts()))
        tags = {"cbrun.run_id": self.run_dir.name, "cbrun.run_dir": str(self.run_dir.resolve()),
                **self.config.tags}
        run = self.client.create_run(experiment_id, run_name=self.config.run_name
                                     or self.run_dir.name, tags=tags)
        self.run_id = run.info.run_id
        state.run_id, state.experiment_id = self.run_id, experiment_id
        state.url = _url(uri, experiment_id, self.run_id)

    def sent_steps(self) -> set[int]:
        """Epochs the MLflow run already holds: asked of the store, so an epoch logged just
        before a kill is not logged again. One log_batch is one transaction, so any key
        tells."""
        latest = self.client.get_run(self.run_id).data.metrics
        steps: set[int] = set()
        for key in latest:
            steps.update(m.step for m in self.client.get_metric_history(self.run_id, key))
        return steps

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param, RunTag

        # A param cannot change in MLflow; a resume with --set records the new value as a
        # tag instead, so the run shows both.
        held = self.client.get_run(self.run_id).data.params
        new = [Param(k, v) for k, v in params.items() if k not in held]
        changed = [RunTag(f"cbrun.changed.{k}", v) for k, v in params.items()
                   if k in held and held[k] != v]
        for start in range(0, len(new), _BATCH):
            self.client.log_batch(self.run_id, params=new[start:start + _BATCH])
        for start in range(0, len(changed), _BATCH):
            self.client.log_batch(self.run_id, tags=changed[start:start + _BATCH])

    def log_epochs(self, epochs: list[tuple[int, dict[str, float]]]) -> None:
        """Several epochs, in as few log_batch calls as MLflow's limit allows, each epoch
        whole in one of them (one transaction: a resume's `sent_steps` may trust any key)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch: list = []
        for step, metrics in epochs:
            these = [Metric(k, float(v), now, step) for k, v in sorted(metrics.items())]
            if batch and len(batch) + len(these) > _METRICS_BATCH:
                self.client.log_batch(self.run_id, metrics=batch)
                batch = []
            batch.extend(these)
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def log_summary(self, metrics: dict[str, float], tags: dict[str, str], step: int) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(k, float(v), now, step) for k, v in sorted(metrics.items())],
            tags=[RunTag(k, v) for k, v in sorted(tags.items())])

    def log_text(self, name: str, text: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def log_file(self, path: Path) -> None:
        folder = path.parent.relative_to(self.run_dir).as_posix()
        self.client.log_artifact(self.run_id, str(path),
                                 artifact_path=None if folder == "." else folder)

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=END_STATUS.get(status, "FAILED"))



    def _artifacts(self) -> str | None:
        location = self.config.artifact_location
        return None if location is None else absolute_location(location, self.config_dir)


def _new_sqlite_store(uri: str) -> None:
    """A new SQLite store's tables, made in a file beside it and then put in place whole.

    MLflow makes a new store by running every migration since its first schema (70 of
    them in 3.18), each committed and so fsync'd: 6-7 s of waiting for the disk here, for
    1.3 s of work. Made without those syncs in a file of its own, synced once and linked
    into place (never over a store that appeared meanwhile), the store is the one MLflow
    would have made, and a crash or power cut halfway leaves no store rather than half of
    one. Where it cannot be done (no hard links, the folder not writable), MLflow makes
    the store itself, as before."""
    found = local_store(uri)
    if found is None or found[0] != "sqlite" or found[1].exists():
        return
    import sqlalchemy
    from mlflow import MlflowClient

    path = found[1]
    query = uri[len(SQLITE):].partition("?")[1:]
    made = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.new")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The mode MLflow's own file would have (the umask's), not a temporary file's 0600.
        os.close(os.open(made, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError:
        return

    def unsynced(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA journal_mode=MEMORY")
        cursor.close()

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", unsynced)
    try:
        client = MlflowClient(tracking_uri=SQLITE + str(made) + "".join(query))
        engine = getattr(getattr(client._tracking_client, "store", None), "engine", None)
        if engine is not None:
            engine.dispose()  # no connection left open on the file once it is the store
        with made.open("rb+") as db:
            os.fsync(db.fileno())
        os.link(made, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except Exception:  # noqa: BLE001, S110 - a store made meanwhile, no links: MLflow's way
        pass
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "connect", unsynced)
        made.unlink(missing_ok=True)


@contextmanager
def _one_engine_try(uri: str) -> Iterator[None]:
    """MLflow tries to open a database store ten times over ~100 s (its
    MAX_RETRY_COUNT, no setting for it): once is enough to know, and the run goes on
    without the tracker either way."""
    if not _database(uri):
        yield
        return
    from mlflow.store.db import utils

    saved = getattr(utils, "MAX_RETRY_COUNT", None)
    if saved is not None:
        utils.MAX_RETRY_COUNT = 1
    try:
        yield
    finally:
        if saved is not None:
            utils.MAX_RETRY_COUNT = saved


def _database(uri: str) -> bool:
    return uri.split(":", 1)[0].split("+", 1)[0].lower() in ("sqlite", "postgresql", "mysql",
                                                              "mssql")


def _url(uri: str, experiment_id: str, run_id: str) -> str | None:
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return None
