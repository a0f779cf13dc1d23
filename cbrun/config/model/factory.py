"""`model: {factory: package.module:build, params: {...}}`: a model built by the user's code.

THIS RUNS YOUR CODE: training imports the module (the config's folder is searched first)
and calls the function with `params` as keyword arguments; it must return a keras.Model.
cbrun compiles, trains, checkpoints and resumes it like any other. Before TensorFlow, and
without running it, the function's source is read where it is a file next to the config:
`params` must be names the function takes, and every argument it needs must be given.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from cbrun.config.base import StrictModel
from cbrun.suggest import did_you_mean


class FactoryModel(StrictModel):
    """A keras.Model returned by your function (runs your code)."""

    kind: ClassVar[str] = "factory"

    factory: str = Field(description="`package.module:function`; the config's folder is "
                                     "searched first, so `models:build` finds models.py next "
                                     "to the YAML. The function returns a keras.Model.")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="Keyword arguments for the function.")

    @field_validator("factory")
    @classmethod
    def _import_path(cls, value: str) -> str:
        module, sep, attr = value.partition(":")
        if not sep or not all(p.isidentifier() for p in module.split(".")) \
                or not attr.isidentifier():
            raise ValueError(f"factory must be 'module:function' (e.g. 'models:build' for a "
                             f"models.py next to the config); got {value!r}")
        return value

    @field_validator("params")
    @classmethod
    def _keyword_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [key for key in value if not (isinstance(key, str) and key.isidentifier())]
        if bad:
            raise ValueError(f"params keys become keyword arguments, so they must be Python "
                             f"identifiers; got {bad[0]!r}")
        return value

    def output_names(self) -> list[str] | None:
        return None  # known only once built; compile's per-output keys name them

    def preflight(self, folder: Path) -> list[tuple[tuple[Any, ...], str]]:
        """`params` against the function's signature, read from its source (never run). An
        installed module, a function defined some other way or one taking **kwargs is left
        to the call."""
        module, _, name = self.factory.partition(":")
        base = folder / module.replace(".", "/")
        source = next((p for p in (base.with_suffix(".py"), base / "__init__.py")
                       if p.is_file()), None)
        if source is None:
            return []
        try:
            tree = ast.parse(source.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            return []  # the import at train time reports it, with Python's own message
        function = next((node for node in tree.body if isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name), None)
        if function is None or function.args.kwarg is not None:
            return []
        args = function.args
        named = [a.arg for a in args.args + args.kwonlyargs]
        required = [a.arg for a in args.args[:len(args.args) - len(args.defaults)]]
        required += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
        found = [(("model", "params", key), (
            f"{name}() in {source.name} takes no parameter {key!r}"
            f"{did_you_mean(key, named)}; it takes: {', '.join(named) or 'nothing'}"))
            for key in self.params if key not in named]
        missing = [arg for arg in required if arg not in self.params]
        if missing and not found:
            found.append((("model", "params"), (
                f"{name}() in {source.name} needs {', '.join(missing)}; give "
                f"{'them' if len(missing) > 1 else 'it'} in params")))
        return found
