"""The upper floor: everything that imports TensorFlow/Keras.

Called, this package is the Python API's `cbrun.train(config, overrides=..., runs_dir=...,
quiet=...)` (cbrun/api.py; see cbrun.ApiModule for why). Importing it imports nothing heavy.
"""

from cbrun import callable_module

callable_module(__name__)
