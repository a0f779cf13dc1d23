"""`cbrun init` for a CSV or Parquet table: read it (a failure is one line that says what the
file is instead), pick the label and the columns cbrun can take, write `data` and `model`."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from cbrun.commands.init import (
    LABEL_NAMES,
    MAX_CLASSES,
    _classification,
    _head,
    _q,
    _q_path,
    _regression,
)
from cbrun.errors import UsageError
from cbrun.suggest import did_you_mean

_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_DECIMAL_COMMA = re.compile(r"[-+]?\d+,\d+")


def _text_head(path: Path) -> str:
    """The first 64 KiB as text, or a UsageError for a file that is empty or not text."""
    with path.open("rb") as handle:
        head = handle.read(65536)
    if not head.strip():
        raise UsageError(f"{path} is empty; a CSV table starts with a header row of column names")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UsageError(f"{path} is UTF-16 text; save it as UTF-8 (e.g. iconv -f utf-16 -t "
                         "utf-8)")
    controls = sum(b < 32 and b not in b"\t\r\n" for b in head)
    if b"\0" in head or controls > len(head) // 100:
        raise UsageError(f"{path} is not a text file (it holds binary bytes); a CSV table is "
                         "UTF-8 text with a header row")
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = len(head) == 65536 and exc.start > len(head) - 4  # a character cut in two
        if not cut:
            raise UsageError(f"{path} is not UTF-8 text (byte {head[exc.start]:#x} at offset "
                             f"{exc.start}); save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
                             ) from None
        return head[:exc.start].decode("utf-8")


def _guess_delimiter(text: str, not_this: str) -> str | None:
    """The delimiter that splits the header and the next rows into the same number (>1) of
    fields."""
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    for candidate in _DELIMITERS:
        if candidate == not_this:
            continue
        counts = {len(row) for row in csv.reader(io.StringIO("\n".join(lines)),
                                                 delimiter=candidate)}
        if len(counts) == 1 and counts.pop() > 1:
            return candidate
    return None


def read_table(path: Path, delimiter: str | None, decimal: str = "."):
    """(table, source) of a .csv or .parquet, or a UsageError saying what the file is."""
    import pyarrow as pa

    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        if delimiter is not None:
            raise UsageError("--delimiter is for a CSV table; a Parquet file has no delimiter")
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise UsageError(f"{path} is not a readable Parquet table: "
                             f"{str(exc).strip().splitlines()[0]}") from None
        source = "parquet"
    else:
        import pyarrow.csv as pacsv

        text, sep = _text_head(path), delimiter or ","
        try:
            table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=sep),
                                   convert_options=pacsv.ConvertOptions(decimal_point=decimal))
        except pa.ArrowInvalid as exc:
            raise UsageError(_csv_problem(path, text, sep, exc)) from None
        from cbrun.tables import late_problem

        late = late_problem(path, table, sep, decimal)
        if late:  # a column typed by its first rows that a later row contradicts
            raise UsageError(f"{path}: {late}")
        source = "csv"
    if table.num_rows == 0:
        raise UsageError(f"{path} has a header ({', '.join(table.column_names)}) but no rows; "
                         "a model needs rows to train on")
    return table, source


def _csv_problem(path: Path, text: str, sep: str, exc: Exception) -> str:
    from cbrun.tables import csv_problem, row_problem

    found = row_problem(path, sep)
    if found is None or found.fields is None or found.ends > found.line:  # no delimiter guess
        return f"{path} is not a readable CSV table: {csv_problem(path, sep, exc)}"
    line, got, want = found.line, found.fields, found.header
    fields = f"line {line} has {got} field{'s' if got != 1 else ''} where the header has {want}"
    guess = _guess_delimiter(text, sep)
    if guess is None and want > 1:  # the delimiter splits the header: one row is wrong
        return f"{path}: {fields}; every row needs one field per column"
    hint = (f"pass --delimiter {_shell(guess)}" if guess else "pass it with --delimiter")
    return (f"{path} is not a {_DELIMITERS.get(sep, repr(sep))}-separated table ({fields}); "
            f"if it uses another delimiter, {hint}")


def _shell(char: str) -> str:
    return "$'\\t'" if char == "\t" else f"'{char}'"


def _input_name(column: str, taken: set[str]) -> str:
    """A graph input name (letters, digits, _) for a column, unique among `taken`."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", column).strip("_") or "text"
    import yaml

    # `yes`, `null`... are not strings to YAML: a key `yes:` would be read as true.
    base = base if base[0].isalpha() and yaml.safe_load(base) == base else f"c_{base}"
    name, n = base[:60], 2
    while name in taken:
        name, n = f"{base[:57]}_{n}", n + 1
    taken.add(name)
    return name


def _is_free_text(column) -> bool:
    """Sentences rather than categories: most values differ and hold several words."""
    values = [v for v in column.to_pylist() if v is not None]
    if len(values) < 10:
        return False
    words = sum(len(v.split()) for v in values) / len(values)
    return words >= 3 and len(set(values)) > 0.5 * len(values)


def _text_table(top: list[str], features: list[str], texts: list[str], head: list[str],
                compile_: str) -> tuple[str, str, str]:
    """A graph: each free-text column through its own adapted TextVectorization and an
    Embedding, the other columns together through an adapted Normalization."""
    taken = {"joined", "hidden", "output"}  # the layer names written below
    text_inputs = {_input_name(c, taken): c for c in texts}
    rest = [c for c in features if c not in texts]
    groups = {name: [column] for name, column in text_inputs.items()}
    numbers = _input_name("numbers", taken) if rest else None
    if numbers:
        groups[numbers] = rest
    data = _head("data", [
        *top,
        "features:                # one named input per text column, the rest together",
        *[f"  {name}: [{', '.join(map(_q, cols))}]" for name, cols in groups.items()],
        f"text: [{', '.join(map(_q, texts))}]   # kept as raw strings for TextVectorization",
        "validation_split: 0.2    # the last 20% of the rows",
        "batch_size: 32",
    ])
    inputs = [f"  {name}: {{shape: [1], dtype: string}}" for name in text_inputs]
    if numbers:
        inputs.append(f"  {numbers}: {{shape: [{len(rest)}]}}   # string columns here become "
                      "integer ids")
    layers, joined = [], []
    for name in text_inputs:
        layers += [
            f"  # {name}: the 10000 most frequent words of the training rows, 100 per row.",
            (f"  - {{name: {name}_words, type: TextVectorization, adapt: true, "
            f"max_tokens: 10000, output_sequence_length: 100, inputs: {name}}}"),
            (f"  - {{name: {name}_vectors, type: Embedding, input_dim: 10000, output_dim: 32, "
            f"inputs: {name}_words}}"),
            f"  - {{name: {name}_mean, type: GlobalAveragePooling1D, inputs: {name}_vectors}}",
        ]
        joined.append(f"{name}_mean")
    if numbers:
        layers.append(f"  - {{name: {numbers}_scaled, type: Normalization, adapt: true, "
                      f"inputs: {numbers}}}")
        joined.append(f"{numbers}_scaled")
    last = joined[0]
    if len(joined) > 1:
        layers.append(f"  - {{name: joined, type: Concatenate, inputs: [{', '.join(joined)}]}}")
        last = "joined"
    layers.append(f"  - {{name: hidden, type: Dense, units: 64, activation: relu, inputs: {last}}}")
    out = head[0].replace("- {type: Dense,", "- {name: output, type: Dense,").replace(
        "}", ", inputs: hidden}", 1)
    layers.append(f"  {out}")
    model = _head("model", ["inputs:", *inputs, "layers:", *layers, "outputs: output"])
    return data, model, compile_


def _kind(column) -> str | None:
    """Why cbrun cannot take a column ('a date', ...), or None for numbers, bools, text."""
    import pyarrow as pa

    from cbrun.tables import _is_text

    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) \
            or _is_text(column):
        return None
    for test, what in ((pa.types.is_date, "a date"), (pa.types.is_timestamp, "a timestamp"),
                       (pa.types.is_time, "a time of day"), (pa.types.is_duration, "a duration"),
                       (pa.types.is_null, "empty in every row"), (pa.types.is_decimal, "a decimal"),
                       (pa.types.is_binary, "bytes")):
        if test(kind):
            return what
    return f"of type {kind}"


def _target(table, label: str) -> tuple[list[str], str, str]:
    import pyarrow as pa

    from cbrun.tables import _is_text

    target = table.column(label)
    values = sorted(set(target.to_pylist()) - {None})
    why = _kind(target)
    if why:
        raise UsageError(f"the label column {label!r} is {why}; cbrun learns a number or a "
                         "class (pass another column with --label)")
    if _is_text(target):
        head, compile_ = _classification(len(values), f"class ({', '.join(map(str, values[:6]))}"
                                                      f"{', ...' if len(values) > 6 else ''})")
        return head, compile_, f"{len(values)} classes"
    if pa.types.is_boolean(target.type):
        head, compile_ = _classification(2, "class id (0 false, 1 true)")
        return head, compile_, "2 classes (false 0, true 1)"
    if pa.types.is_integer(target.type) and values and len(values) <= MAX_CLASSES \
            and values[0] >= 0:
        head, compile_ = _classification(int(values[-1]) + 1, "class id 0..")
        return head, compile_, f"{int(values[-1]) + 1} classes (integer ids)"
    head, compile_ = _regression(1)
    return head, compile_, "a number (regression)"


def _decimal_commas(column) -> bool:
    values = [v for v in column.to_pylist() if v is not None]
    return bool(values) and all(_DECIMAL_COMMA.fullmatch(v) or v.isdigit() for v in values) \
        and any("," in v for v in values)


def table(path: Path, rel: str, label: str | None,
          delimiter: str | None) -> tuple[str, str, str]:
    from cbrun.tables import _is_text

    data, source = read_table(path, delimiter)
    columns = data.column_names
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise UsageError(f"{path.name} has the column name{'s' if len(twice) > 1 else ''} "
                         f"{', '.join(map(repr, twice))} more than once; give each column a "
                         "name of its own")
    if label is None:
        label = next((c for c in columns if c.lower() in LABEL_NAMES), columns[-1])
    elif label not in columns:
        raise UsageError(f"{path.name} has no column {label!r}{did_you_mean(label, columns)}"
                         f"; its columns: {', '.join(columns)}")
    head, compile_, kind = _target(data, label)
    left_out = {c: f"{why}; cbrun takes numbers and text" for c in columns
                if c != label and (why := _kind(data.column(c)))}
    if "" in columns and label != "":  # pandas's to_csv writes its row index so
        left_out[""] = "a column without a name: a saved row index?"
    features = [c for c in columns if c != label and c not in left_out]
    if not features:
        raise UsageError(f"{path.name} has no column cbrun can take as an input besides "
                         f"{label!r}: " + "; ".join(f"{c or '(no name)'}: {w}"
                                               for c, w in left_out.items()))
    notes = [f"# left out: {c or json.dumps(c)} ({why})"
             for c, why in left_out.items()]
    strings = [c for c in features if _is_text(data.column(c))]
    commas = [c for c in strings if _decimal_commas(data.column(c))]
    if commas and source == "csv":  # read as numbers with the data source's `decimal: ","`
        data, _ = read_table(path, delimiter, decimal=",")
        strings = [c for c in features if _is_text(data.column(c))]
        notes.append(f"# {', '.join(commas)}: numbers with decimal commas (decimal: \",\")")
    top = [f"source: {source}", f"path: {_q_path(rel)}",
           *([f"delimiter: {json.dumps(delimiter)}"] if delimiter else []),
           *(['decimal: ","'] if commas and source == "csv" else []),
           f"label: {_q(label)}          # the target: {kind}"]
    texts = [c for c in strings if _is_free_text(data.column(c))]
    if texts:
        return _text_table(top + notes, features, texts, head, compile_)
    body = _head("data", [
        *top,
        f"features: [{', '.join(map(_q, features))}]",
        *notes,
        *([(f"# string columns {', '.join(strings)} become integer ids (vocabulary saved "
            "in the run's data/table.json)")] if strings else []),
        "validation_split: 0.2    # the last 20% of the rows",
        "batch_size: 32",
    ])
    model = _head("model", [
        f"input_shape: [{len(features)}]",
        "layers:",
        "  # Learns each column's mean and variance from the training rows before epoch 1.",
        "  - {type: Normalization, adapt: true}",
        "  - {type: Dense, units: 64, activation: relu}",
        *[f"  {line}" for line in head],
    ])
    return body, model, compile_

