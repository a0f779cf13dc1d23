"""Where an MLflow store is, and whether it can be opened, found without MLflow (lower floor).

A local store (`sqlite:///file.db`, `file:folder`, a bare folder path) is checked on disk by
`cbrun validate` and again when a run opens it; a server only when the run opens it, with
one connection and no retries. MLflow itself retries an SQLite engine ten times over ~100 s
and an HTTP request several times: a store that cannot work must be found before that.

A relative path in a store URI starts at the config file's folder, as every other path in
a config does (`absolute_uri`); run.json records the absolute URI, and a resume uses it.
"""

from __future__ import annotations

import os
import socket
import tempfile
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

SQLITE = "sqlite:///"
_SQLITE_HEADER = b"SQLite format 3\x00"
# MLflow 3.13 turned its folder store into an error unless this variable says true.
FILE_STORE_VAR = "MLFLOW_ALLOW_FILE_STORE"
_FILE_STORE_REFUSED_SINCE = (3, 13)
CONNECT_SECONDS = 10.0


class StoreUnavailable(Exception):
    """A store that cannot be used; its text is the one line the user sees."""


def _split_query(rest: str) -> tuple[str, str]:
    path, mark, query = rest.partition("?")
    return path, mark + query


def local_store(uri: str) -> tuple[str, Path] | None:
    """("sqlite", database file) or ("folder", store folder) for a local store, the path as
    written (possibly relative); None for a server or a workspace name."""
    if uri.lower().startswith(SQLITE):
        return "sqlite", Path(unquote(_split_query(uri[len(SQLITE):])[0]))
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "file" and parts.netloc in ("", "localhost"):
        return "folder", Path(unquote(parts.path))
    if not scheme or (len(scheme) == 1 and uri[1:2] == ":"):  # a bare path (C:\ on Windows)
        return "folder", Path(uri)
    return None


def absolute_uri(uri: str, folder: Path) -> str:
    """`uri` with the relative path of a local store made absolute from `folder`; any other
    URI as it is."""
    found = local_store(uri)
    if found is None or found[1].is_absolute() or found[1] in (Path(), Path(":memory:")):
        return uri
    path = (folder / found[1]).resolve()
    if found[0] == "sqlite":
        return SQLITE + str(path) + _split_query(uri[len(SQLITE):])[1]
    return path.as_uri() if uri.lower().startswith("file:") else str(path)


def absolute_location(location: str, folder: Path) -> str:
    """An artifact location: a relative folder (bare or `file:`) made absolute from
    `folder`; s3://, gs:// and the like as they are."""
    found = local_store(location)
    return absolute_uri(location, folder) if found and found[0] == "folder" else location


def store_problem(uri: str) -> str | None:
    """Why the store `uri` (a local one's path absolute) cannot be opened or written, or
    None: a local store's file or folder, a database's driver. Touches nothing but a probe
    file it removes at once; a server is not contacted here."""
    missing = _driver_missing(uri)
    if missing:
        return missing
    found = local_store(uri)
    if found is None:
        return None
    kind, path = found
    if str(path) in ("", ".", ":memory:"):
        return ("names no file: an in-memory store is lost when the run ends; write "
                "'sqlite:///mlflow.db'" if kind == "sqlite" else "names no folder")
    if kind == "sqlite":
        return _sqlite_problem(path)
    refused = _file_store_refused()
    if refused:
        return (f"{path} would be a folder store (MLflow's file backend), which "
                f"MLflow {refused} refuses unless {FILE_STORE_VAR}=true is set; write "
                f"'sqlite:///{path.with_suffix('.db')}' for a database file, "
                "'http://host:5000' for a server")
    if path.exists() and not path.is_dir():
        return f"the store {path} is a file; a folder store is a folder"
    return _folder_problem(path, "the store")


def _sqlite_problem(path: Path) -> str | None:
    if path.is_dir():
        return (f"the SQLite store {path} is a folder; name a database file, e.g. "
                f"'sqlite:///{path / 'mlflow.db'}'")
    if path.exists():
        if not path.is_file():
            return f"the SQLite store {path} is not a regular file"
        try:
            with path.open("r+b") as db:  # opened for writing, nothing written
                head = db.read(len(_SQLITE_HEADER))
        except OSError as exc:
            return f"cannot write the SQLite store {path} ({exc.strerror or exc})"
        if head and head != _SQLITE_HEADER:
            return f"{path} is not an SQLite database; name a new file or an MLflow store"
        if head and (why := _sqlite_unreadable(path)):
            return f"cannot open the SQLite store {path}: {why}"
    # SQLite writes its journal beside the database, and MLflow creates missing folders.
    return _folder_problem(path.parent, "the SQLite store's folder")


def _sqlite_unreadable(path: Path) -> str | None:
    import sqlite3

    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            db.execute("select count(*) from sqlite_master").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        return str(exc)
    return None


# SQLAlchemy's driver for each database when the URI names none (postgresql://), and the
# module of each named one (postgresql+psycopg://).
_DEFAULT_DRIVER = {"postgresql": "psycopg2", "mysql": "mysqldb", "mssql": "pyodbc",
                   "sqlite": "pysqlite"}
_DRIVER_MODULE = {"psycopg2": "psycopg2", "psycopg": "psycopg", "pg8000": "pg8000",
                  "mysqldb": "MySQLdb", "pymysql": "pymysql",
                  "mysqlconnector": "mysql.connector", "mariadbconnector": "mariadb",
                  "pyodbc": "pyodbc", "pymssql": "pymssql", "pysqlite": "sqlite3"}


def _driver_missing(uri: str) -> str | None:
    """A database store whose Python driver (or SQLAlchemy) is not installed."""
    scheme = uri.split(":", 1)[0].lower()
    base, _, driver = scheme.partition("+")
    if base not in _DEFAULT_DRIVER:
        return None
    import importlib.util

    module = _DRIVER_MODULE.get(driver or _DEFAULT_DRIVER[base])
    if importlib.util.find_spec("sqlalchemy") is None:
        return ("MLflow's database stores need SQLAlchemy; install it with "
                "pip install 'cbrun[mlflow]'")
    if module is not None and importlib.util.find_spec(module.split(".")[0]) is None:
        return (f"{scheme}:// needs the {module} package (SQLAlchemy's driver for it), "
                "which is not installed")
    return None


def _folder_problem(path: Path, what: str) -> str | None:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot create {path}: {existing} is a file, not a folder"
    try:
        handle, probe = tempfile.mkstemp(prefix=".cbrun-probe-", dir=existing)
    except OSError as exc:
        where = "" if existing == path else f" (it would be made in {existing})"
        return f"cannot write in {what} {path}{where}: {exc.strerror or exc}"
    os.close(handle)
    os.unlink(probe)
    return None


def _file_store_refused() -> str | None:
    """The installed MLflow's version when it refuses folder stores without the opt-in;
    read from the package metadata, not by importing MLflow."""
    if os.environ.get(FILE_STORE_VAR, "").strip().lower() in ("true", "1"):
        return None
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("mlflow", "mlflow-skinny"):
        try:
            text = version(dist)
        except PackageNotFoundError:
            continue
        numbers = tuple(int(p) for p in text.split(".")[:2] if p.isdigit())
        return text if numbers >= _FILE_STORE_REFUSED_SINCE else None
    return None


# The port each kind of server listens on when the URI names none.
_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}


def server_problem(uri: str, timeout: float = CONNECT_SECONDS) -> str | None:
    """Why the server of `uri` (MLflow's, or a database's) cannot be reached, from one
    connection attempt; None when it accepts one, when a proxy stands between (the proxy
    decides), or when `uri` names no server."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower().split("+", 1)[0]
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        return None  # refused by the config's check; nothing to ask
    if scheme not in _PORTS or not host:
        return None
    if (scheme in ("http", "https") and scheme in urllib.request.getproxies()
            and not urllib.request.proxy_bypass(host)):
        return None
    port = port or _PORTS[scheme]
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except socket.gaierror:
        return f"the server {host} of {_shown(uri)} is not known (no such host)"
    except ConnectionRefusedError:
        return f"nothing listens at {host}:{port} ({_shown(uri)}): the connection was refused"
    except TimeoutError:
        return f"the server {host}:{port} ({_shown(uri)}) did not answer within {timeout:g} s"
    except OSError as exc:
        return f"cannot reach {host}:{port} ({_shown(uri)}): {exc.strerror or exc}"
    return None


def _shown(uri: str) -> str:
    """`uri` without a password (postgresql://user:secret@host/db)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
