"""The one probe for "this command stays light": runs `cbrun` commands (or a snippet of
Python) in a fresh process and says which modules they imported.

A fresh process, because the test's own has usually imported TensorFlow already; one
process for all the commands of a test, because each start costs ~1 s. The worktree's code
is what runs (PYTHONPATH starts at this repository, not at an installed cbrun).

    from tests.helpers.light import run_cbrun

    result = run_cbrun(["validate", path], ["schema"])
    assert result.codes == [2, 0] and result.heavy == []
    assert "did you mean" in result.commands[0].out

(Imported as tests.helpers.light: a top-level `helpers` in sys.modules would shadow the
user's own helpers.py that tests/test_user_imports.py imports from a config's folder.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from conftest import HANG_S

REPO = Path(__file__).resolve().parents[2]

# What "heavy" means: TensorFlow, Keras, and cbrun's TensorFlow floor (docs/ARCHITECTURE.md).
HEAVY = ("tensorflow", "keras")
FLOOR = "cbrun.engine"

# Runs in the child. Each command's output is caught on its own, as the test reads it, in
# streams like the real ones (a binary buffer under the text: click writes bytes there for
# shell completion; the same encoding and errors); the report is written to a file so that
# nothing a command prints can garble it.
_CHILD = r"""
import contextlib, io, json, sys
spec = json.loads(sys.argv[1])
ran = []

def stream(like):
    return io.TextIOWrapper(io.BytesIO(), encoding=like.encoding, errors=like.errors,
                            write_through=True)

def text(caught):
    return caught.buffer.getvalue().decode(caught.encoding, "backslashreplace")

try:
    if spec["code"] is not None:
        exec(compile(spec["code"], "<run_python>", "exec"), {"__name__": "__main__"})
    from cbrun.cli import main
    for argv in spec["argvs"]:
        sys.argv = ["cbrun", *argv]
        out, err = stream(sys.stdout), stream(sys.stderr)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main() if spec["whole"] else main(argv)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        ran.append({"argv": argv, "code": code, "out": text(out), "err": text(err)})
finally:
    with open(spec["report"], "w") as handle:
        json.dump({"commands": ran, "modules": sorted(sys.modules)}, handle)
"""


@dataclass(frozen=True)
class Command:
    argv: list[str]
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Result:
    commands: list[Command]
    modules: frozenset[str]  # every module the process had imported at its end
    out: str  # what the process printed outside the commands (run_python's code)
    err: str

    @property
    def codes(self) -> list[int]:
        return [c.code for c in self.commands]

    @property
    def heavy(self) -> list[str]:
        """The heavy modules imported, [] when light: TensorFlow and Keras (not their
        thousands of submodules) and each module of cbrun's floor, which says who opened it."""
        return sorted(m for m in self.modules
                      if m in HEAVY or m == FLOOR or m.startswith(f"{FLOOR}."))

    def imported(self, name: str) -> bool:
        return name in self.modules


def run_cbrun(*argvs, cwd: Path | str | None = None, env: dict[str, str] | None = None,
              path: tuple[Path | str, ...] = (), whole: bool = False) -> Result:
    """Each `cbrun ARGV` in turn in one fresh process, through cli.main(argv).

    env: added to this process's environment. path: folders put before the repository on
    PYTHONPATH (a plugin, a sitecustomize). whole: each command through argv-less main(),
    as the `cbrun` executable runs it (sys.argv; the process counts as the command itself,
    cbrun/process.py), for shell completion's environment variables, for instance."""
    return _run(argvs=[[str(a) for a in argv] for argv in argvs], code=None, cwd=cwd,
                env=env, path=path, whole=whole)


def run_python(code: str, *, cwd: Path | str | None = None,
               env: dict[str, str] | None = None, path: tuple[Path | str, ...] = ()) -> Result:
    """`code` run as a script in a fresh process; what it printed is Result.out/err."""
    return _run(argvs=[], code=code, cwd=cwd, env=env, path=path, whole=False)


def _run(*, argvs, code, cwd, env, path, whole) -> Result:
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join([*map(str, path), str(REPO)])
    with tempfile.TemporaryDirectory(prefix="cbrun-light-") as folder:
        report = Path(folder) / "report.json"
        spec = {"argvs": argvs, "code": code, "whole": whole, "report": str(report)}
        done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec)], cwd=cwd,
                              env=full_env, capture_output=True, text=True, timeout=HANG_S,
                              check=False)
        said = f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        # No report: the process ended inside a command (main() leaves through os._exit
        # once TensorFlow is loaded: a heavy import, then).
        assert report.exists(), f"the process ended before it reported: {said}"
        data = json.loads(report.read_text())
    assert done.returncode == 0, said
    return Result([Command(**c) for c in data["commands"]], frozenset(data["modules"]),
                  done.stdout, done.stderr)
