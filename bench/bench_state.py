"""How long the training thread stalls for the resume state of a ~25M-parameter model with
Adam (300 MB of variables): the whole write on the training thread (before) against the
copy it now makes before handing the write to a thread (cbrun/state/writer.py).

    python bench/bench_state.py [--rounds 3]

A/B interleaved in one process; medians; prints the load average next to the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from cbrun.state.capture import capture_state
    from cbrun.state.files import write_state
    from cbrun.state.writer import StateWriter

    model = keras.Sequential([keras.Input((5000,)), keras.layers.Dense(5000),
                              keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    params = model.count_params()
    before, stall, background = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder)
        writer = StateWriter()
        for epoch in range(1, args.rounds + 1):
            start = time.perf_counter()
            write_state(run_dir, capture_state(model, [], 2 * epoch - 1, {}))
            before.append(time.perf_counter() - start)
            start = time.perf_counter()
            state = capture_state(model, [], 2 * epoch, {})
            writer.save(run_dir, state, lambda: None)
            stall.append(time.perf_counter() - start)
            start = time.perf_counter()
            writer.wait()
            background.append(time.perf_counter() - start + stall[-1])
        writer.close()
    load = os.getloadavg()[0]
    print(f"{params / 1e6:.1f}M parameters + Adam; {args.rounds} rounds, load {load:.1f} "
          f"on {os.cpu_count()} cores")
    print(f"state written on the training thread: {statistics.median(before):.2f} s "
          f"(median; {', '.join(f'{t:.2f}' for t in before)})")
    print(f"training thread with the writer thread: {statistics.median(stall):.2f} s "
          f"(median; {', '.join(f'{t:.2f}' for t in stall)}); the write itself "
          f"{statistics.median(background):.2f} s off the training thread")


if __name__ == "__main__":
    main()
