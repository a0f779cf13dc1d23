"""What each export format is, and where an export may be written (lower floor: the
export command decides all of it before TensorFlow loads)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from cbrun.errors import UsageError
from cbrun.run.outpath import check_run_files, check_writable

EXPORT_DIR = "export"  # inside the run directory
# format -> (default artifact name, its suffix or "" for a folder, the modules it needs
# beyond TensorFlow: the `export` extra).
FORMATS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "saved_model": ("saved_model", "", ()),
    "litert": ("model.tflite", ".tflite", ("ai_edge_litert",)),
    "onnx": ("model.onnx", ".onnx", ("onnx", "onnxruntime", "tf2onnx")),
}
DEFAULT_TOLERANCE = 1e-4
INSTALL_HINT = "pip install 'cbrun[export]'"


def missing_modules(fmt: str) -> list[str]:
    """The modules of the `export` extra that `fmt` needs and this Python cannot import
    (found without importing them: tf2onnx imports TensorFlow)."""
    missing = []
    for name in FORMATS[fmt][2]:
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            found = None
        if found is None:
            missing.append(name)
    return missing


def extra_message(fmt: str, missing: list[str]) -> str:
    return (f"--format {fmt} needs {', '.join(FORMATS[fmt][2])} from the export extra "
            f"({', '.join(missing)} not installed): {INSTALL_HINT}")


def default_target(run_dir: Path, fmt: str) -> Path:
    return run_dir / EXPORT_DIR / FORMATS[fmt][0]


def check_target(target: Path, fmt: str, force: bool, verify_only: bool) -> None:
    """Refuse an output that cbrun must not write: a link, what a run wrote for itself, a
    non-empty target without --force, a folder that --force would wipe although no export
    made it, a place where nothing can be written."""
    suffix = FORMATS[fmt][1]
    if suffix and target.suffix != suffix:
        raise UsageError(f"-o {target}: a {fmt} export is one file ending in {suffix}")
    if os.path.islink(target):
        raise UsageError(f"-o {target} is a symbolic link (to {os.readlink(target)}); cbrun "
                         f"does not write through links: name the real path")
    check_run_files(target)
    if verify_only:
        if not target.exists():
            raise UsageError(f"--verify-only: no {fmt} artifact at {target} (export it first, "
                             f"or name it with -o)")
        return
    check_writable(target)
    if not target.exists():
        return
    if suffix:
        if target.is_dir():
            raise UsageError(f"-o {target} is a folder; a {fmt} export is one file")
        if not force:
            raise UsageError(f"{target} exists; add --force to replace it")
        return
    if not target.is_dir():
        raise UsageError(f"-o {target} is a file; a saved_model export is a folder")
    if not any(target.iterdir()):
        return
    if not force:
        raise UsageError(f"{target} exists and is not empty; add --force to replace it")
    if not (target / "saved_model.pb").is_file():
        raise UsageError(f"{target} holds files but no saved_model.pb: --force replaces only an "
                         f"earlier saved_model export, never another folder")


def remove_target(target: Path) -> None:
    """Remove what `check_target` allowed --force to replace."""
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
