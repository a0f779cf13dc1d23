"""Importing the user's code that a config names as `package.module:name` (Custom,
LambdaCallback).

Lower floor: nothing is imported until a callback is built, when training starts. The
folder of the config file comes first on the path, so `my_callbacks:thing` finds the
`my_callbacks.py` next to the YAML.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cbrun.errors import ConfigError, Problem
from cbrun.suggest import did_you_mean


def check_import_path(value: str, what: str, example: str) -> str:
    """`module:name` with dotted identifiers on both sides; ValueError otherwise."""
    module, sep, attr = value.partition(":")
    dotted = all(p.isidentifier() for p in module.split("."))
    if not sep or not dotted or not all(p.isidentifier() for p in attr.split(".")):
        raise ValueError(f"{what} must be {example}; got {value!r}")
    return value


def fail(loc: tuple[Any, ...], message: str) -> ConfigError:
    return ConfigError([Problem(loc=loc, message=message)])


def import_object(config_dir: Path, path: str, loc: tuple[Any, ...], kind: str,
                  candidates: Callable[[Any], bool]) -> Any:
    """The object `module:attr` names. ConfigError at `loc` when the module cannot be
    imported or lacks the name; the message lists what it has (`candidates` picks which
    of its names to offer, `kind` says what they are: "Callback classes", "functions")."""
    module_name, _, attr = path.partition(":")
    folder = str(config_dir.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or module_name.startswith(f"{exc.name}."):
            raise fail(loc, f"no module named {module_name!r}: looked in the config's folder "
                            f"{folder} and on the Python path") from exc
        raise fail(loc, f"importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:  # the user's module raised while loading
        raise fail(loc, f"importing {module_name!r} failed: "
                        f"{type(exc).__name__}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            found = [n for n, v in vars(module).items()
                     if not n.startswith("_") and candidates(v)]
            hint = did_you_mean(part, found) if found else ""
            if not hint:
                hint = f"; its {kind}: {', '.join(found) or 'none'}"
            raise fail(loc, f"module {module_name!r} has no {attr!r}{hint}")
        target = getattr(target, part)
    return target
