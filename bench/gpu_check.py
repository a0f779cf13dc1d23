"""What to run on a machine with a GPU (nothing in `make test` needs one).

    make gpu-check      # or: .venv/bin/python bench/gpu_check.py

1. the demo (configs/digits.yaml, 3 epochs) on one GPU;
2. the compute-bound wide MLP of bench/bench_whole.py on one GPU, in float32 and in
   mixed_float16 (Keras's loss scaling), each once whole and once SIGKILLed in its
   second state write and resumed: log.csv must match byte for byte;
3. with two GPUs or more, the same on `mirrored` over /gpu:0 and /gpu:1.
Prints one line per check and exits 1 if any failed (0 with a note when there is no GPU).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_whole import REPO, configs

FAULT_ENV = "CBRUN_FAULT_KILL_IN_STATE_WRITE"


def gpus() -> int:
    probe = "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"
    out = subprocess.run([sys.executable, "-c", probe],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return int(out.stdout.strip().splitlines()[-1])


def cbrun(*args: str, env: dict | None = None) -> tuple[int, float, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cbrun", *args], capture_output=True,
                          text=True, check=False,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                               "PYTHONPATH": str(REPO), **(env or {})})
    return proc.returncode, time.perf_counter() - start, proc.stderr


def only_run(folder: Path) -> Path:
    return next(p for p in folder.iterdir() if p.is_dir())


def exact(config: Path, root: Path, label: str, sets: list[str]) -> bool:
    """Whole, then killed in the 2nd state write and resumed: the same log.csv?"""
    code, took, err = cbrun("train", str(config), "--runs-dir", str(root / "whole"), "-q",
                            *sets)
    if code:
        print(f"FAIL {label}: exit {code}\n{err[-2000:]}")
        return False
    code, _, err = cbrun("train", str(config), "--runs-dir", str(root / "killed"), "-q", *sets,
                         env={FAULT_ENV: "2"})
    if code != -9:
        print(f"FAIL {label}: the killed run exited {code}\n{err[-2000:]}")
        return False
    code, _, err = cbrun("resume", str(only_run(root / "killed")), "-q")
    same = (code == 0 and (only_run(root / "whole") / "log.csv").read_bytes()
            == (only_run(root / "killed") / "log.csv").read_bytes())
    print(f"{'ok  ' if same else 'FAIL'} {label}: {took:.1f} s whole; killed and resumed "
          f"{'gives the same log.csv' if same else 'differs'}")
    return same


def main() -> None:
    count = gpus()
    if not count:
        print("no GPU here: nothing to check (make test covers the CPU)")
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        made = configs(root, {"digits": 3, "wide": 3})
        code, took, err = cbrun("train", str(REPO / "configs" / "digits.yaml"), "--runs-dir",
                                str(root / "demo"), "-q", "--set", "fit.epochs=3",
                                "--set", "distribute.type=one_device")
        print(f"{'ok  ' if code == 0 else 'FAIL'} demo on /gpu:0: {took:.1f} s"
              + ("" if code == 0 else f"\n{err[-2000:]}"))
        results.append(code == 0)
        wide = made["wide"][0]
        variants = [("wide MLP on /gpu:0", ["--set", "distribute.type=one_device"]),
                    ("wide MLP on /gpu:0, mixed_float16",
                     ["--set", "distribute.type=one_device",
                      "--set", "compile.mixed_precision=mixed_float16"])]
        if count >= 2:
            config = yaml.safe_load(wide.read_text())
            config["distribute"] = {"type": "mirrored", "devices": ["/gpu:0", "/gpu:1"]}
            mirrored = root / "wide-mirrored.yaml"
            mirrored.write_text(yaml.safe_dump(config))
            results.append(exact(mirrored, root / "mirrored", "wide MLP mirrored on 2 GPUs",
                                 []))
        else:
            print("one GPU: mirrored over two is not checked here")
        for i, (label, sets) in enumerate(variants):
            results.append(exact(wide, root / f"wide-{i}", label, sets))
    if not all(results):
        sys.exit(1)


if __name__ == "__main__":
    main()
