"""What a run's data files were when it started, so that a resume on other data is refused.

An interrupted run resumed after its CSV gained rows (or its image folder lost some) would
train its remaining epochs on other data than its first ones: its log and model would no
longer be those of any one dataset. run.json keeps a fingerprint of each data file and
folder; `cbrun resume` compares.

What is hashed is what training reads: a file's bytes (SHA-256, whole up to 256 MB, beyond
that its first and last 16 MB with the size), and for a folder the files its source lists
(`FileSource.folder_files`, the very listing the loader uses: a `.DS_Store` is no image),
each by content, with its path in the folder. An image rewritten at the same size changes
the fingerprint; a file training skips does not.

Hashing costs a read of the data (2000 PNGs of 4 KB: about 0.2 s on 2 busy cores, where
listing them took 0.07 s): `runs/<id>/cache/fingerprints.tsv` keeps each file's hash with its
size and change times, so a resume hashes again only what was touched since (0.1 s there).
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

WHOLE = 256 << 20
EDGE = 16 << 20
CACHE = Path("cache") / "fingerprints.tsv"  # inside the run directory
# Past this many bytes a folder is hashed by several threads (hashlib and reads release the
# GIL); below it the threads cost more than they save.
THREADED = 32 << 20


def _sha256(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        if size <= WHOLE:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        else:
            digest.update(handle.read(EDGE))
            handle.seek(size - EDGE)
            digest.update(handle.read(EDGE))
    return digest.hexdigest()


class _Hashes:
    """File hashes, taken again only for files whose size or change times differ from
    those the cache recorded."""

    def __init__(self, cache: Path | None):
        self.cache, self.known, self.now = cache, {}, {}
        try:
            lines = cache.read_text(encoding="utf-8", errors="surrogateescape").splitlines() \
                if cache else []
        except (OSError, UnicodeDecodeError):
            lines = []  # no cache, or a damaged one: everything is hashed
        for line in lines:
            parts = line.split("\t", 4)
            if len(parts) == 5:
                self.known[parts[4]] = (tuple(parts[1:4]), parts[0])

    def of(self, paths: list[Path]) -> list[tuple[str, int]]:
        """[(sha256, size)] of `paths`, in their order."""
        stats = [path.stat() for path in paths]
        keys = [(str(s.st_size), str(s.st_mtime_ns), str(s.st_ctime_ns)) for s in stats]
        todo = [i for i, path in enumerate(paths)
                if self.known.get(str(path.absolute()), (None,))[0] != keys[i]]
        total = sum(stats[i].st_size for i in todo)
        workers = min(4, os.cpu_count() or 1) if total > THREADED else 1
        batches = [todo[k::workers] for k in range(workers)]

        def work(batch: list[int]) -> list[tuple[int, str]]:
            return [(i, _sha256(paths[i], stats[i].st_size)) for i in batch]

        with ThreadPoolExecutor(workers) as pool:
            fresh = dict(pair for done in pool.map(work, batches) for pair in done)
        out = []
        for i, path in enumerate(paths):
            name = str(path.absolute())
            digest = fresh[i] if i in fresh else self.known[name][1]
            self.now[name] = (keys[i], digest)
            out.append((digest, stats[i].st_size))
        return out

    def save(self, run_dir: Path) -> None:
        """The hashes taken now, for the next resume; a cache that cannot be written only
        costs that resume the hashing."""
        from cbrun.errors import RunError
        from cbrun.run.rundir import atomic_write_bytes
        from cbrun.run.runguard import check_inside

        text = "".join(f"{digest}\t{chr(9).join(key)}\t{name}\n"
                       for name, (key, digest) in self.now.items() if "\n" not in name)
        try:
            check_inside(run_dir, CACHE, "the fingerprint cache")
            (run_dir / CACHE.parent).mkdir(exist_ok=True)
            atomic_write_bytes(run_dir / CACHE, text.encode("utf-8", "surrogateescape"))
        except (OSError, RunError):  # a link planted, a full disk: the run goes on without it
            return


def _file(path: Path, hashes: _Hashes) -> str:
    (digest, size), = hashes.of([path])
    return f"sha256 {digest[:16]}, {size} bytes"


def _folder(files: list[Path], path: Path, hashes: _Hashes) -> str:
    digest = hashlib.sha256()
    total = 0
    for file, (sha, size) in zip(files, hashes.of(files), strict=True):
        # A name of bytes that are not UTF-8 (a lone surrogate in Python) as its bytes.
        digest.update(f"{file.relative_to(path).as_posix()}\0{sha}\n".encode(
            "utf-8", "surrogateescape"))
        total += size
    return f"content sha256 {digest.hexdigest()[:16]}, {len(files)} files, {total} bytes"


def _listing(path: Path) -> str:
    """A folder as cbrun before 0.2 saw it (every file's path and size): what run.json
    holds for the runs it started, compared the same way."""
    digest = hashlib.sha256()
    count = total = 0
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        size = item.stat().st_size
        digest.update(f"{item.relative_to(path).as_posix()}\0{size}\n".encode(
            "utf-8", "surrogateescape"))
        count, total = count + 1, total + size
    return f"listing sha256 {digest.hexdigest()[:16]}, {count} files, {total} bytes"


def fingerprint(data: Any, config_dir: Path, run_dir: Path | None = None) -> dict[str, str]:
    """{data field: fingerprint} of the files and folders the data section names; with
    `run_dir`, each file's hash is kept in its cache for the resume."""
    found, hashes = _taken(data, config_dir, run_dir, {})
    if run_dir is not None:
        hashes.save(run_dir)
    return found


def changed(before: dict[str, str], data: Any, config_dir: Path,
            run_dir: Path | None = None) -> list[str]:
    """What differs now from `before`, one line per data field. The run's cache is read,
    and written again only when nothing differs: a refused resume writes nothing."""
    now, hashes = _taken(data, config_dir, run_dir, before)
    differs = [f"data.{field} ({data.paths().get(field)}): was {was}, now "
               f"{now.get(field, 'missing')}" for field, was in before.items()
               if now.get(field) != was]
    if run_dir is not None and not differs:
        hashes.save(run_dir)
    return differs


def _taken(data: Any, config_dir: Path, run_dir: Path | None,
           old: dict[str, str]) -> tuple[dict[str, str], _Hashes]:
    """The fingerprints now, each field in the form `old` holds it (a run started by an
    older cbrun recorded folders by their listing)."""
    hashes = _Hashes(run_dir / CACHE if run_dir else None)
    found = {}
    for field, value in data.paths().items():
        path = config_dir / value
        if path.is_dir():
            found[field] = (_listing(path) if old.get(field, "").startswith("listing sha256")
                            else _folder(data.folder_files(path), path, hashes))
        elif path.is_file():
            found[field] = _file(path, hashes)
        elif (listed := getattr(data, "table_files", lambda *_: None)(config_dir, value)):
            found[field] = _folder(listed[1], listed[0], hashes)  # a glob of a table's files
    return found, hashes
