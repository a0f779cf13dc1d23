"""Importing the user's code that a config names as `package.module:name` (Custom,
LambdaCallback, a model factory, a python data loader).

Lower floor: nothing is imported until a callback is built, when training starts. The
folder of the config file comes first on the path while the module is imported, so
`my_callbacks:thing` finds the `my_callbacks.py` next to the YAML; the path is put back as
it was afterwards (a notebook that called `cbrun.train` imports from where it did before).

A module imported from a config's folder stays in `sys.modules`, as any import does: the
runs of configs in one folder share it. A config in another folder gets the modules of its
own folder: the modules imported from any other config's folder are forgotten first (taken
out of `sys.modules`, so a same-named module is imported afresh from the new folder), and
so is a cached module of the name asked for that the new folder has its own file for.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
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
    folder = config_dir.resolve()
    try:
        module = _import_from(folder, module_name)
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


# Modules imported from a config's folder by this process: module name -> that folder.
_FROM_FOLDER: dict[str, Path] = {}


def _import_from(folder: Path, name: str) -> ModuleType:
    """`name` imported with `folder` first on the path; the path as it was afterwards."""
    _forget_other_folders(folder, name)
    before = set(sys.modules)
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        return importlib.import_module(name)
    finally:
        if sys.path and sys.path[0] == entry:
            del sys.path[0]
        elif entry in sys.path:  # the module moved it; ours is the first one
            sys.path.remove(entry)
        for new in (set(sys.modules) - before) | {name}:
            if _lives_in(sys.modules.get(new), new, folder):
                _FROM_FOLDER[new] = folder


def _forget_other_folders(folder: Path, name: str) -> None:
    for cached, where in list(_FROM_FOLDER.items()):
        if where != folder:
            sys.modules.pop(cached, None)
            del _FROM_FOLDER[cached]
    top = name.split(".")[0]
    held = sys.modules.get(top)
    has_own = (folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()
    if held is not None and has_own and not _lives_in(held, top, folder):
        for cached in [n for n in sys.modules if n == top or n.startswith(f"{top}.")]:
            del sys.modules[cached]


def _lives_in(module: ModuleType | None, name: str, folder: Path) -> bool:
    """Whether `module` (named `name`) was loaded from `folder`: its top-level package or
    module file sits right in it (not a package installed somewhere below it)."""
    if module is None:
        return False
    top = name.split(".")[0]
    places = [getattr(module, "__file__", None), *(getattr(module, "__path__", None) or [])]
    for place in places:
        if not place:
            continue
        try:
            first = Path(place).resolve().relative_to(folder).parts[0]
        except (ValueError, IndexError, OSError):
            continue
        if first == top or first.split(".")[0] == top:
            return True
    return False
