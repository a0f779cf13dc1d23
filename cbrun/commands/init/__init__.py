"""`cbrun init DATA`: a commented starter config for a table, an image folder or an npz.

The config is written where the user stands (or to `-o`), whatever the data, and says so;
its data paths are relative to its own folder, as every config's are. It validates and
trains as it is, and TensorFlow is not imported to write it. Everything the data names
(columns, labels, folders) reaches the file through document.py, never as raw text."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import click

from cbrun.commands.init import templates as t
from cbrun.commands.init.document import Block, comment, render
from cbrun.commands.init.layout import SPLITS, TRAIN
from cbrun.errors import UsageError


def _check(output: Path) -> None:
    """The checks of `cbrun validate` (no TensorFlow) on the file just written: a config
    that init writes but that fails them is not left to fail at `cbrun train`."""
    from cbrun.config.load import load_config
    from cbrun.errors import ConfigError

    try:
        load_config(output, (), check_data_files=True)
    except ConfigError as exc:
        problems = "\n".join(p.render() for p in exc.problems)
        raise UsageError(f"wrote {output}, but it does not validate because of the data:\n"
                         f"{problems}\nfix the data (or edit {output}), then check it with "
                         f"`cbrun validate {output}`") from None


def _kind_of(path: Path) -> str:
    """What DATA is, or a UsageError: init reads only regular files and folders (a FIFO or
    a device would block it, or never end)."""
    mode = path.stat().st_mode
    if stat.S_ISDIR(mode):
        from cbrun.data.shards import folder_source

        # A folder of Parquet or CSV shards is one table; any other folder, images.
        source = folder_source(path)
        if source is None:
            return "images"
        stems = {p.name.split(".")[0].lower() for p in path.iterdir()}
        if stems & set(TRAIN) and stems & {n for names in SPLITS.values() for n in names}:
            raise UsageError(f"{path} holds a training table and a validation or test table "
                             f"beside it, not shards of one table; give the training one "
                             f"(cbrun init {path / 'train'}.{source}), and the others beside "
                             "it are used")
        return "table"
    if not stat.S_ISREG(mode):
        raise UsageError(f"{path} is not a regular file or a folder; give a .csv, .parquet, "
                         ".npz or a folder of class folders of images")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".parquet"):
        return "table"
    if suffix == ".npz":
        return "npz"
    raise UsageError(f"{path} is not a .csv, .parquet, .npz or a folder of class folders of "
                     "images")


@click.command()
@click.argument("data_path", metavar="DATA", type=click.Path(path_type=Path, exists=True))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Where to write the config. Defaults to DATA's name with .yaml in the "
                   "current folder.")
@click.option("--label", help="The target column of a table (default: a column named label, "
                              "target, class... or the last one).")
@click.option("--delimiter", help="The character between the fields of a CSV table, e.g. ';' "
                                  "(default ','); written into the config.")
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
def init(data_path: Path, output: Path | None, label: str | None, delimiter: str | None,
         force: bool) -> int:
    """Write a commented starter config for DATA: a CSV or Parquet table, a folder of class
    folders of images (or of train/val/test folders of them), or an .npz. Validation and
    test data beside it (val/, validation/, test/; val.csv, test.csv) are used. It validates
    and trains as it is; init runs `cbrun validate`'s checks on it and exits 2 when the data
    fails them (the file is kept, with the problems printed)."""
    kind = _kind_of(data_path)
    named = data_path.resolve() if data_path.name in ("", ".", "..") else data_path
    stem = named.name if data_path.is_dir() else named.stem
    if stem.lower() in TRAIN:  # data/train (with data/val beside it) is the data set `data`
        stem = named.resolve().parent.name or stem
    if delimiter is not None:
        delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)
        if len(delimiter) != 1:
            raise UsageError(f"--delimiter must be one character (e.g. ';' or tab); "
                             f"given {delimiter!r}")
        if data_path.suffix.lower() != ".csv" and not (
                kind == "table" and data_path.is_dir()):
            raise UsageError(f"--delimiter is for a .csv table; {data_path} is not one")
    output = output or Path(f"{t.run_name(stem)}.yaml")
    if output.exists() and not force:
        raise UsageError(f"{output} exists; choose another --output, or --force")
    if output.is_dir():
        raise UsageError(f"{output} is a folder; give --output a file name (e.g. "
                         f"{output / 'config.yaml'})")

    def rel_of(path: Path) -> str:
        return Path(os.path.relpath(path.absolute(), output.absolute().parent)).as_posix()

    if kind == "images":
        from cbrun.commands.init.images import images

        data, model, compile_, what = images(data_path, rel_of)
    else:
        from cbrun.commands.init.layout import siblings

        layout = siblings(data_path, folders=False)
        if kind == "table":
            from cbrun.commands.init.tables import table

            data, model, compile_, what = table(data_path, rel_of, layout, label, delimiter)
        else:
            from cbrun.commands.init.arrays import npz

            data, model, compile_, what = npz(data_path, rel_of, layout)
    doc = (Block().set("name", t.run_name(output.stem)).set("seed", 42).set("data", data)
           .set("model", model).set("compile", compile_).set("fit", t.fit())
           .set("callbacks", t.callbacks()))
    text = render(doc, [(f"Written by `cbrun init {data_path}`: a starting point that trains "
                        "as it is."),
                        "Check it with `cbrun validate`, train it with `cbrun train`."])
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    _check(output)
    # What the data names is shown escaped: a value could hold a terminal's escape codes.
    click.echo(f"wrote {output} ({comment(what)}); train it with: cbrun train {output}")
    return 0
