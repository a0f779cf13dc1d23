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
# LiteRT's post-training quantization (`export --quantize`): int8 weights and activations,
# calibrated on samples of the run's training split, or float16 weights.
QUANTIZE = ("int8", "float16")
DEFAULT_CALIBRATION = 200  # training samples the int8 ranges are measured on
# What a quantized export may lose on the validation split against the float model: accuracy
# points of a classifier output, percent of the mean absolute error of any other output.
DEFAULT_ACCURACY_DROP = 1.0
DEFAULT_MAE_RISE = 5.0
# `cbrun benchmark`'s rows: name -> (export format, None for the Keras model itself;
# quantization; the file it is written as).
BENCHMARK_ROWS: dict[str, tuple[str | None, str | None, str | None]] = {
    "keras": (None, None, None),
    "saved_model": ("saved_model", None, "saved_model"),
    "litert": ("litert", None, "model.tflite"),
    "litert-int8": ("litert", "int8", "model-int8.tflite"),
    "litert-float16": ("litert", "float16", "model-float16.tflite"),
    "onnx": ("onnx", None, "model.onnx"),
}


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


def skipped_rows(names: list[str]) -> dict[str, str]:
    """{benchmark row: why it is skipped} for the rows whose export extra is missing."""
    found = {}
    for name in names:
        fmt = BENCHMARK_ROWS[name][0]
        missing = missing_modules(fmt) if fmt else []
        if missing:
            found[name] = (f"needs {', '.join(FORMATS[fmt][2])} from the export extra "
                           f"({', '.join(missing)} not installed): {INSTALL_HINT}")
    return found


def default_target(run_dir: Path, fmt: str, quantize: str | None = None) -> Path:
    """runs/<id>/export/<artifact>; a quantized LiteRT model beside the float one, as
    model-int8.tflite or model-float16.tflite."""
    name = FORMATS[fmt][0]
    if quantize:
        name = name.replace(".", f"-{quantize}.", 1)
    return run_dir / EXPORT_DIR / name


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
