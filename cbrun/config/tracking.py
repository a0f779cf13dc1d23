"""The `tracking:` section: MLflow and Weights & Biases runs that mirror the run directory.

Checked before training like every other key: a URI that cannot be a tracking store, a
local store that cannot be opened or written (cbrun/tracking/stores.py), an unknown W&B mode
or a package that is not installed is an error at the line that asks for it. A server that
is down is only found when the run starts; that costs a warning, never the run (see
cbrun/tracking/view.py).
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, field_validator

from cbrun.config.base import StrictModel
from cbrun.suggest import did_you_mean
from cbrun.tracking.stores import absolute_uri, local_store, store_problem

# MLflow's own store schemes (its tracking store registry) plus the database dialects its
# SQLAlchemy store takes with a driver suffix (postgresql+psycopg2://).
MLFLOW_SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "mssql",
                  "databricks", "databricks-uc", "uc")
_DATABASES = ("sqlite", "postgresql", "mysql", "mssql")
# W&B names: letters, digits and a few marks; its server refuses the rest.
_WANDB_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_TAG_KEY = re.compile(r"^[A-Za-z0-9_.\-/ ]{1,250}$")


def check_tracking_uri(uri: str) -> str:
    """The URI must name a store MLflow can reach: a known scheme, and for a server a host."""
    if not uri.strip():
        raise ValueError("tracking_uri must not be empty; leave it out to use MLflow's "
                         "default (the MLFLOW_TRACKING_URI environment variable)")
    if uri in ("databricks", "databricks-uc", "uc"):
        return uri  # MLflow's names for the workspace of the current Databricks profile
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    base = scheme.split("+", 1)[0]
    if not scheme or (len(scheme) == 1 and uri[1:2] == ":"):  # a bare path, or C:\...
        return uri  # MLflow's folder store; the preflight checks it on disk
    if base not in MLFLOW_SCHEMES and re.fullmatch(r"\d+(/.*)?", uri[len(scheme) + 1:]):
        raise ValueError(f"tracking_uri {uri!r} is a server without its scheme; write "
                         f"'http://{uri}' (or https://)")
    if base not in MLFLOW_SCHEMES or ("+" in scheme and base not in _DATABASES):
        raise ValueError(f"tracking_uri scheme {scheme!r} is not one MLflow stores runs "
                         f"with{did_you_mean(base, MLFLOW_SCHEMES)}; known: "
                         f"{', '.join(MLFLOW_SCHEMES)}")
    if base in ("http", "https"):
        try:
            parts.port  # noqa: B018 - reading it checks it
        except ValueError:
            raise ValueError(f"tracking_uri {uri!r} has a port that is not a number "
                             "between 0 and 65535") from None
        if not parts.hostname:
            raise ValueError(f"tracking_uri {uri!r} names no server; e.g. "
                             f"'{scheme}://localhost:5000'")
    if base == "sqlite" and not uri.lower().startswith("sqlite:///"):
        raise ValueError(f"tracking_uri {uri!r}: an SQLite store is written "
                         "'sqlite:///relative/path.db' or 'sqlite:////absolute/path.db' "
                         "(three or four slashes; relative to the config's folder)")
    if base in ("sqlite", "file") and str((local_store(uri) or ("", Path()))[1]) in (
            ".", ":memory:"):
        raise ValueError(f"tracking_uri {uri!r} names no file or folder; an in-memory "
                         "store would be lost when the run ends")
    return uri


def package_missing(module: str, extra: str) -> str | None:
    """Why a backend cannot run here, found without importing it (validate stays light)."""
    if importlib.util.find_spec(module) is not None:
        return None
    return (f"needs the {module} package, which is not installed; install it with "
            f"pip install 'cbrun[{extra}]'")


class _Strict(StrictModel):
    # `log_model: yes` or `tags: {run: 3}` are errors, not True and '3'.
    model_config = ConfigDict(strict=True)


class MlflowConfig(_Strict):
    """An MLflow run per cbrun run; a resumed run continues it."""

    tracking_uri: str | None = Field(
        None, description="Where runs are stored: http(s)://host:port, sqlite:///file.db, "
                          "file:folder, databricks; a relative path starts at the config's "
                          "folder. Defaults to MLFLOW_TRACKING_URI or MLflow's own default.")
    experiment: str = Field(
        "Default", min_length=1, max_length=500,
        description="Experiment name; created when missing. Defaults to 'Default'.")
    artifact_location: str | None = Field(
        None, description="Where a newly created experiment keeps artifacts (MLflow's "
                          "default otherwise; a relative folder starts at the config's "
                          "folder). Ignored for an existing experiment.")
    run_name: str | None = Field(
        None, min_length=1, max_length=250,
        description="Name shown in MLflow. Defaults to the cbrun run id.")
    tags: dict[str, str] = Field(
        default_factory=dict, description="Tags set on the MLflow run.")
    log_model: bool = Field(
        False, description="Upload model.keras as an artifact too. Defaults to false.")

    @field_validator("tracking_uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return None if value is None else check_tracking_uri(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _TAG_KEY.match(key):
                raise ValueError(f"tag name {key!r}: MLflow takes letters, digits and "
                                 "'_', '-', '.', ' ', '/' (up to 250)")
        return value


class WandbConfig(_Strict):
    """A Weights & Biases run per cbrun run; a resumed run continues it."""

    project: str = Field(pattern=_WANDB_NAME, description="W&B project name.")
    entity: str | None = Field(
        None, pattern=_WANDB_NAME,
        description="W&B user or team; defaults to the logged-in user's default.")
    mode: Literal["online", "offline"] = Field(
        "online", description="online sends as the run trains; offline writes the run under "
                              "wandb/ in the run directory, for `wandb sync` later.")
    name: str | None = Field(
        None, min_length=1, max_length=128,
        description="Name shown in W&B. Defaults to the cbrun run id.")
    log_model: bool = Field(
        False, description="Upload model.keras too. Defaults to false.")


class TrackingConfig(_Strict):
    """Experiment trackers that receive the run: params, every epoch, finals, files."""

    mlflow: MlflowConfig | None = None
    wandb: WandbConfig | None = None

    def store_problems(self, folder: Path) -> list[tuple[tuple[Any, ...], str]]:
        """A local MLflow store that cannot be opened or written, found on disk before
        training: the config's own URI with a relative path from `folder` (the config's),
        MLFLOW_TRACKING_URI from the current one, as MLflow reads it. A server is only asked
        when the run starts."""
        if self.mlflow is None:
            return []
        uri = self.mlflow.tracking_uri
        loc: tuple[Any, ...] = ("tracking", "mlflow", "tracking_uri")
        label = f"tracking_uri {uri!r}"
        if uri is None:
            uri = os.environ.get("MLFLOW_TRACKING_URI") or None
            if uri is None:
                return []  # MLflow's default store, checked when the run opens it
            loc, label, folder = ("tracking", "mlflow"), f"MLFLOW_TRACKING_URI {uri!r}", Path()
            try:
                check_tracking_uri(uri)
            except ValueError as exc:
                return [(loc, f"{label}: {exc}")]
        problem = store_problem(absolute_uri(uri, folder.absolute()))
        return [(loc, f"{label}: {problem}")] if problem else []

    def package_problems(self) -> list[tuple[tuple[str, ...], str]]:
        found = []
        if self.mlflow is not None and (why := package_missing("mlflow", "mlflow")):
            found.append((("tracking", "mlflow"), f"MLflow tracking {why}"))
        if self.wandb is not None and (why := package_missing("wandb", "wandb")):
            found.append((("tracking", "wandb"), f"W&B tracking {why}"))
        return found
