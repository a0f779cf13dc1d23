"""The run directory and what a run is on disk: its creation and lock, run.json, the links
guard, the listing of runs, the log, checkpoints, resume's checks, and one train or resume
process (segment.py). No TensorFlow."""
