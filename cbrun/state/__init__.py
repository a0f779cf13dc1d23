"""A run's state: everything an exact resume needs, saved as the run trains.

    files.py    the states on disk: names, checksums, the atomic write, pruning, the newest
                one a resume may read
    capture.py  what a state holds, taken from a model and put back (Keras imported inside)
    writer.py   the writes, off the training thread, one at a time
    rewind.py   a resume's changes: files cut back, an early stop undone

No module here imports TensorFlow at its top: `cbrun resume` reads states before the import.
The Keras callback that drives them is cbrun/engine/callbacks/keeper.py.
"""
