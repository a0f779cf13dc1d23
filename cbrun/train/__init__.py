"""The upper floor: everything that imports TensorFlow/Keras.

Called, this package is the Python API's `cbrun.train(config, overrides=..., runs_dir=...,
quiet=...)` (cbrun/api.py): `cbrun.train` names this package as soon as any module in it is
imported, so the package itself answers the call. Importing it imports nothing heavy.
"""

import sys
import types


class _Callable(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from cbrun.api import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _Callable
