"""`cbrun validate CONFIG...`: check configs without training (and without TensorFlow)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from cbrun.errors import EXIT_USAGE, ConfigError, RunError


def _check(paths: list[str], overrides: tuple[str, ...], build: bool,
           debug: bool) -> dict[str, Any]:
    """One config: a file, or (--merge) several files merged in order."""
    from cbrun.config.load import load_config
    from cbrun.config.monitors import logged_keys
    from cbrun.data.balance import data_warnings

    name = " + ".join(paths)
    try:
        loaded = load_config(paths, overrides, check_data_files=True)
    except ConfigError as exc:
        return {"file": name, "ok": False, "problems": exc.problems,
                **({"not_built": "the model was not built: the config must be valid "
                                 "first"} if build else {})}
    config = loaded.config
    built = None
    if build:
        try:
            built = _build(loaded, debug)
        except ConfigError as exc:
            return {"file": name, "ok": False, "problems": exc.problems}
    return {"file": name, "ok": True, "problems": [], "name": config.name,
            "callbacks": [spec.type for spec in config.callbacks],
            "logged_keys": logged_keys(config), "built": built,
            "warnings": data_warnings(config.data, Path(paths[-1]).parent, config.seed)}


def _build(loaded, debug: bool) -> dict[str, Any]:
    """The model built and the data checked against it (--build), on the config's backend:
    what only JAX refuses is found as training would find it."""
    from cbrun.commands.common import fill_positions
    from cbrun.engine.tfimport import choose_backend, import_tensorflow

    choose_backend(loaded.config.backend, strict=True)
    import_tensorflow(debug, backend=loaded.config.backend)
    from cbrun.engine.buildcheck import build_check

    try:
        return build_check(loaded.config, loaded.config_dir)
    except ConfigError as exc:
        raise fill_positions(exc, loaded.positions) from None
    except RunError as exc:  # the data, read as training reads it
        raise ConfigError([loaded.positions.problem(("data",), str(exc))]) from None


def _built_line(built: dict[str, Any]) -> str:
    def shapes(found: list) -> str:
        return ", ".join("(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"
                         for shape in found)

    on = "" if built["backend"] == "tensorflow" else f" on {built['backend']}"
    return (f"  built{on}: input {shapes(built['inputs'])} -> output {shapes(built['outputs'])}, "
            f"{built['parameters']:,} parameters; every split fits the model")


def _strict(value: Any) -> Any:
    """JSON has no NaN or Infinity; a `given: .nan` is shown as the string 'nan'."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_strict(item) for item in value]
    return value


def _text(result: dict[str, Any]) -> str:
    if result["ok"]:
        count = len(result["callbacks"])
        return "\n".join([
            (f"ok  {result['file']}  ({result['name']}: {count} "
             f"callback{'' if count == 1 else 's'}; logs {', '.join(result['logged_keys'])})"),
            *([_built_line(result["built"])] if result.get("built") else []),
            *[f"  warning: data: {line}" for line in result["warnings"]]])
    problems = result["problems"]
    head = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
    return (f"FAIL {result['file']}  ({head})\n" + "\n".join(p.render() for p in problems)
            + (f"\n  ({result['not_built']})" if result.get("not_built") else ""))


@click.command()
@click.argument("configs", nargs=-1, required=True, metavar="CONFIG...")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document: per file, ok and its problems (file, line, "
                   "column, field, message, hint).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a value before checking, as `cbrun train --set` does "
                   "(e.g. fit.epochs=3, callbacks.EarlyStopping.patience=2). Repeatable.")
@click.option("--merge", is_flag=True,
              help="Read the CONFIG files as one config, merged in order, as `cbrun train "
                   "A.yaml B.yaml` does (without it each file is a config of its own).")
@click.option("--build", is_flag=True,
              help="Also build and compile the model with TensorFlow (no training, no run "
                   "directory) and check every split against it: a wrong input_shape or too "
                   "few output units are found here, not in the first epoch.")
@click.pass_context
def validate(ctx: click.Context, configs: tuple[str, ...], as_json: bool,
             overrides: tuple[str, ...], merge: bool, build: bool) -> int:
    """Check CONFIG files: schema, monitors, old Keras names, YAML mistakes.

    Every problem of every file is reported, each with its file:line:column (in a config
    made of several files, `extends:` or --merge, the file that set the value). Exit code 0
    when all files are valid, 2 otherwise. TensorFlow is not imported, unless --build.
    """
    groups = [list(configs)] if merge else [[path] for path in configs]
    debug = ctx.find_root().obj.get("debug", False)
    results = [_check(paths, overrides, build, debug) for paths in groups]
    ok = all(r["ok"] for r in results)
    if as_json:
        doc = {"ok": ok, "files": [{**r, "problems": [p.to_dict() for p in r["problems"]]}
                                   for r in results]}
        click.echo(json.dumps(_strict(doc), indent=2, default=repr, allow_nan=False))
    else:
        # The report is this command's output, problems included: stdout, so that
        # `cbrun validate ... | less` shows them.
        for result in results:
            click.echo(_text(result))
    return 0 if ok else EXIT_USAGE
