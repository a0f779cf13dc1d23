"""`source: python`: a function of yours returns the splits. This runs your code, as a
`Custom` callback does: only use configs you trust."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from cbrun.config.data.common import DataSource, Found

_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class PythonData(DataSource):
    """`function: package.module:load` is called as load(**params) and returns
    {"train": (x, y), "validation": (x, y), "test": (x, y)} (validation and test optional),
    where x and y are arrays or {name: array} mappings, or a tf.data.Dataset of (x, y)
    batches. The module is imported from the config file's folder first."""

    source: Literal["python"] = Field(description="Your own loader function.")
    function: str = Field(description="`module:function`, e.g. my_data:load; the module is "
                                      "looked up next to the config file first.")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="Keyword arguments for the function.")

    @property
    def has_validation(self) -> bool:
        """Known only once the loader ran: a loader is taken to return a 'validation' split
        (so callbacks may watch val_ values); one that does not is told so before the
        first epoch when a callback watches one."""
        return True

    @field_validator("function")
    @classmethod
    def _target(cls, value: str) -> str:
        if not _TARGET.match(value):
            raise ValueError(f"must be `module:function` (e.g. my_data:load), got {value!r}")
        return value

    def preflight(self, folder: Path, *, seed: int) -> Found:
        module = self.function.split(":")[0]
        local = folder / (module.replace(".", "/") + ".py")
        if local.is_file() or (folder / module.split(".")[0]).is_dir():
            return []
        import importlib.util

        try:
            if importlib.util.find_spec(module.split(".")[0]) is not None:
                return []
        except (ImportError, ValueError):
            pass
        return [(("data", "function"), (f"no module {module!r}: not {local}, nor an "
                                       "installed package"))]
