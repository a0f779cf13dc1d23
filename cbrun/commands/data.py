"""`cbrun data check TARGET`: a report on a config's data, or on a data file or folder,
without TensorFlow (cbrun/data/check.py). A report: exit 0 whatever it finds; 2 for a
config or usage error."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cbrun.errors import ConfigError, UsageError

CONFIG_SUFFIXES = (".yaml", ".yml")
_PREVIEW = {"label": "--label", "validation_split": "--validation-split", "split": "--split",
            "seed": "--seed", "delimiter": "--delimiter"}


@click.group("data")
def data() -> None:
    """Look at the data before training."""


@data.command("check")
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document: columns, labels per split, duplicates, findings.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a value of the config first, as `cbrun train --set` does "
                   "(e.g. data.split=stratified). Repeatable.")
@click.option("--label", default=None, metavar="COLUMN",
              help="A table's label column (an .npz's label array; default y). Data files "
                   "only; a config names its label.")
@click.option("--validation-split", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Preview held-out rows of a data file: this fraction, drawn as a run "
                   "draws it with --split and --seed.")
@click.option("--split", "method", default=None,
              type=click.Choice(["auto", "stratified", "random", "tail"]),
              help="How --validation-split draws its rows (default auto).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None,
              help="The seed that draws --validation-split's rows (default 42, a config's).")
@click.option("--delimiter", default=None, metavar="CHAR",
              help="A CSV file's delimiter (default ',').")
def check(target: Path, as_json: bool, overrides: tuple[str, ...], label: str | None,
          validation_split: float | None, method: str | None, seed: int | None,
          delimiter: str | None) -> int:
    """Report on TARGET's data: a config (the data it declares, split as its run splits
    it), a table (.csv, .parquet), an .npz, or a folder of class folders of images.

    Columns with their kinds, missing and distinct values; the label's classes in each
    split; rows repeated inside a split or shared between training and a held-out split;
    constant columns; corrupt images. TensorFlow is not imported. Exit code 0 whatever the
    report finds; 2 for a config or usage error."""
    from cbrun.data import check as checks

    given = {"label": label, "validation_split": validation_split, "split": method,
             "seed": seed, "delimiter": delimiter}
    if target.suffix.lower() in CONFIG_SUFFIXES:
        extra = [option for key, option in _PREVIEW.items() if given[key] is not None]
        if extra:
            raise UsageError(f"{', '.join(extra)} {'is' if len(extra) == 1 else 'are'} for a "
                             "data file; a config's data section says it (change it with "
                             "--set, e.g. --set data.validation_split=0.2)")
        try:
            report = checks.check_config(target, overrides)
        except ConfigError as exc:
            if not as_json:
                raise
            click.echo(json.dumps({"target": str(target), "ok": False,
                                   "problems": [p.to_dict() for p in exc.problems]},
                                  indent=2, default=repr))
            return exc.exit_code
    else:
        if overrides:
            raise UsageError("--set changes a config; TARGET is a data file (for a table "
                             "give --label, --validation-split, --split, --seed)")
        if delimiter is not None and len(delimiter) != 1:
            raise UsageError(f"--delimiter must be one character; given {delimiter!r}")
        if target.exists() and not (target.is_file() or target.is_dir()):
            raise UsageError(f"{target} is not a regular file or folder")
        preview = checks.Preview(label=label, validation_split=validation_split or 0.0,
                                 split=method or "auto", delimiter=delimiter or ",")
        report = checks.check_path(target, preview, checks.DEFAULT_SEED if seed is None
                                   else seed)
    if as_json:
        click.echo(json.dumps({"ok": True, **report}, indent=2, allow_nan=False, default=str))
        return 0
    from rich.console import Console

    from cbrun.data.show import show

    show(report, Console(highlight=False))
    findings = report["findings"]
    for finding in findings:
        click.echo(f"warning: {finding['message']}")
    if not findings:
        click.echo("no warnings")
    return 0
