"""What a run's data files were when it started, so that a resume on other data is refused.

An interrupted run resumed after its CSV gained rows (or its image folder lost some) would
train its remaining epochs on other data than its first ones: its log and model would no
longer be those of any one dataset. run.json keeps a fingerprint of each data file and
folder; `cbrun resume` compares. Files are hashed (SHA-256, whole up to 256 MB, beyond that
their first and last 16 MB with the size); folders by their listing (each file's path and
size), which costs no reading of the images.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

WHOLE = 256 << 20
EDGE = 16 << 20


def _file(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        if size <= WHOLE:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(handle.read(EDGE))
            handle.seek(size - EDGE)
            digest.update(handle.read(EDGE))
    return f"sha256 {digest.hexdigest()[:16]}, {size} bytes"


def _folder(path: Path) -> str:
    digest = hashlib.sha256()
    count = total = 0
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        size = item.stat().st_size
        digest.update(f"{item.relative_to(path).as_posix()}\0{size}\n".encode())
        count, total = count + 1, total + size
    return f"listing sha256 {digest.hexdigest()[:16]}, {count} files, {total} bytes"


def fingerprint(data: Any, config_dir: Path) -> dict[str, str]:
    """{data field: fingerprint} of the files and folders the data section names."""
    found = {}
    for field, value in data.paths().items():
        path = config_dir / value
        if path.is_dir():
            found[field] = _folder(path)
        elif path.is_file():
            found[field] = _file(path)
    return found


def changed(before: dict[str, str], data: Any, config_dir: Path) -> list[str]:
    """What differs now from `before`, one line per data field."""
    now = fingerprint(data, config_dir)
    return [f"data.{field} ({data.paths().get(field)}): was {was}, now "
            f"{now.get(field, 'missing')}" for field, was in before.items()
            if now.get(field) != was]
