"""`cbrun init` for a CSV or Parquet table: read it (a failure is one line that says what the
file is instead), pick the label and the columns cbrun can take, write `data` and `model`.

Numbers go through an adapted Normalization. Columns of a few text values are categories,
encoded inside the model by an adapted StringLookup (one-hot for a few values, an embedding
for many), so the trained and the exported model take the raw columns by name. Free text
gets a TextVectorization. A regression's target is learned scaled and given back in the
data's units (templates.TARGET_SCALE)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from cbrun.commands.init import templates as t
from cbrun.commands.init.document import Block, Items
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
        from cbrun.data.tables import late_problem

        late = late_problem(path, table, sep, decimal)
        if late:  # a column typed by its first rows that a later row contradicts
            raise UsageError(f"{path}: {late}")
        source = "csv"
    if table.num_rows == 0:
        raise UsageError(f"{path} has a header ({', '.join(table.column_names)}) but no rows; "
                         "a model needs rows to train on")
    return table, source


SAMPLE_ROWS = 100_000  # rows of a folder of shards that init looks at


def read_folder(path: Path, delimiter: str | None, decimal: str = "."):
    """(a sample of a folder of shards, source, what was read): every file's schema, then
    for Parquet its footers and whole row groups drawn at random, for CSV the first rows of
    every file (SAMPLE_ROWS in all), never the whole table."""
    import pyarrow as pa

    from cbrun.data.shards import ShardProblem, folder_source, open_shards
    from cbrun.data.stream import human
    from cbrun.data.tables import TableProblem

    source = folder_source(path)
    if delimiter is not None and source != "csv":
        raise UsageError("--delimiter is for CSV tables; a Parquet file has no delimiter")
    try:
        shards = open_shards(".", path, source, delimiter=delimiter or ",", decimal=decimal)
        dataset = shards.dataset()
        if source == "parquet":  # whole row groups drawn at random, as data check does
            return _parquet_sample(path, shards)
        per = -(-SAMPLE_ROWS // len(shards.files))
        parts = []
        for fragment in dataset.get_fragments():
            batches, rows = [], 0
            for batch in fragment.to_batches(schema=dataset.schema, batch_size=per):
                batches.append(batch)
                rows += batch.num_rows
                if rows >= per:  # the rest of the file is never read
                    break
            if batches:
                parts.append(pa.Table.from_batches(batches).slice(0, per))
    except (ShardProblem, TableProblem) as exc:
        raise UsageError(str(exc)) from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise UsageError(f"{path} is not a readable {source} table: "
                         f"{' '.join(str(exc).split())[:200]}") from None
    sample = pa.concat_tables(parts) if parts else dataset.schema.empty_table()
    if sample.num_rows == 0:
        raise UsageError(f"{path} holds {len(shards.files)} {source} files with a header "
                         f"({', '.join(sample.column_names)}) but no rows")
    size = sum(p.stat().st_size for p in shards.files)
    read = (f"read the schemas of {len(shards.files)} files ({human(size)}) and the first "
            f"{sample.num_rows:,} rows; the label and text columns whole")
    return sample, source, read, shards


def _parquet_sample(path: Path, shards):
    """(a sample of a Parquet folder, its source, what was read, its shards): the footers,
    and whole row groups drawn at random (seed 0) up to SAMPLE_ROWS rows
    (cbrun/data/sampled.py), never the whole table."""
    from cbrun.data.sampled import read_sample, sample_steps
    from cbrun.data.shards import parquet_pieces
    from cbrun.data.stream import human

    pieces = parquet_pieces(shards)
    total = sum(p.rows for p in pieces)
    if not total:
        raise UsageError(f"{path} holds {len(shards.files)} parquet files with a header "
                         f"({', '.join(shards.columns)}) but no rows")
    sample, _ = read_sample(shards, sample_steps(pieces, SAMPLE_ROWS, 0), shards.columns)
    size = sum(p.stat().st_size for p in shards.files)
    read = (f"read the schemas and footers of {len(shards.files)} files ({human(size)}) and "
            f"a sample of {sample.num_rows:,} of {total:,} rows (whole row groups drawn at "
            "random); the label and text columns whole")
    return sample, "parquet", read, shards


DISTINCT_MOST = 100_000  # distinct values init counts in a column of a folder of shards


def _distinct(shards, columns: list[str]) -> dict[str, list | None]:
    """Every distinct value of each of `columns` (the label, the text columns), over every
    row of every file, in one pass that reads those columns alone; None for a column past
    DISTINCT_MOST values (free text, identifiers)."""
    import pyarrow.compute as pc

    from cbrun.data.shards import Piece
    from cbrun.data.stream import Reader

    reader = Reader(shards)
    seen: dict[str, set | None] = {c: set() for c in columns}
    for index in range(len(shards.files)):
        for batch in reader.batches(Piece(index, None, 0, 0), columns):
            for column in columns:
                if seen[column] is not None:
                    seen[column].update(pc.unique(batch.column(column)).to_pylist())
                    if len(seen[column]) > DISTINCT_MOST:
                        seen[column] = None
    return {c: None if v is None else sorted(v - {None}) for c, v in seen.items()}


def _csv_problem(path: Path, text: str, sep: str, exc: Exception) -> str:
    from cbrun.data.tables import csv_problem, row_problem

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


def _is_free_text(column) -> bool:
    """Sentences rather than categories: most values differ and hold several words."""
    values = [v for v in column.to_pylist() if v is not None]
    if len(values) < 10:
        return False
    words = sum(len(v.split()) for v in values) / len(values)
    return words >= 3 and len(set(values)) > 0.5 * len(values)


def _kind(column) -> str | None:
    """Why cbrun cannot take a column ('a date', ...), or None for numbers, bools, text."""
    import pyarrow as pa

    from cbrun.data.tables import _is_text

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


def _decimal_commas(column) -> bool:
    values = [v for v in column.to_pylist() if v is not None]
    return bool(values) and all(_DECIMAL_COMMA.fullmatch(v) or v.isdigit() for v in values) \
        and any("," in v for v in values)



LABEL_NAMES = ("label", "labels", "target", "class", "y", "species", "category", "diagnosis")
MAX_CLASSES = 50  # an integer label with more distinct values is taken as a number
ONE_HOT_MOST = 16  # a category with more values gets an embedding instead of one-hot
MAX_VOCABULARY = 10_000  # the most values a category keeps; the rarer ones are unknown


def _target(table, label: str, every: list | None = None) -> tuple[dict, Block, str, str]:
    """(output layer, compile, what the target is, the split that suits it); `every`: the
    label's values over a whole folder of shards, when `table` is a sample of it."""
    import pyarrow as pa

    from cbrun.data.tables import _is_text

    target = table.column(label)
    why = _kind(target)
    if why:
        raise UsageError(f"the label column {label!r} is {why}; cbrun learns a number or a "
                         "class (pass another column with --label)")
    values = sorted(set(target.to_pylist()) - {None}) if every is None else every
    if _is_text(target):
        head, compile_ = t.classifier(len(values))
        return head, compile_, f"{len(values)} classes ({t.shown(values)})", "stratified"
    if pa.types.is_boolean(target.type):
        head, compile_ = t.classifier(2)
        return head, compile_, "2 classes (false 0, true 1)", "stratified"
    if pa.types.is_integer(target.type) and values and len(values) <= MAX_CLASSES \
            and values[0] >= 0:
        units = int(values[-1]) + 1  # a class id is an output's index: ids 1..K need K+1
        head, compile_ = t.classifier(units)
        gaps = "" if len(values) == units else f"; ids {t.shown(values)} used"
        return head, compile_, f"{units} classes (integer ids 0..{units - 1}{gaps})", \
            "stratified"
    head, compile_ = t.regression(1)
    return head, compile_, "a number (regression)", "random"


def _categories(column) -> list:
    return sorted(set(column.to_pylist()) - {None})


def _graph(features: list[str], label: str, kinds: dict[str, str], counts: dict[str, int],
           head: dict, regression: bool) -> tuple[Block, dict[str, list[str]]]:
    """A graph with one input per column (named after it): the exported model takes the
    raw columns. Returns (model, features: {input name: [column]})."""
    taken = {"numbers", "numbers_scaled", "joined", "hidden", "output"}
    names = {column: t.identifier(column, taken) for column in features}
    inputs, layers, joined = Block(), Items(), []
    for column in features:
        spec = {"shape": [1]} if kinds[column] == "number" else {"shape": [1], "dtype": "string"}
        inputs.set(names[column], spec, None if names[column] == column else column)
    numbers = [names[c] for c in features if kinds[c] == "number"]
    if numbers:
        layers.note("The number columns together, each scaled by its training mean and "
                    "variance.")
        source = numbers[0]
        if len(numbers) > 1:
            layers.add({"name": "numbers", "type": "Concatenate", "inputs": numbers})
            source = "numbers"
        layers.add({"name": "numbers_scaled", "type": "Normalization", "adapt": True,
                    "inputs": source})
        joined.append("numbers_scaled")
    for column in features:
        name = names[column]
        if kinds[column] == "category":
            n = counts[column]
            tokens = min(n, MAX_VOCABULARY) + 1  # + the bucket of values never seen
            if n <= ONE_HOT_MOST:
                layers.note(f"{column}: {n} values, a column each (one-hot); a value the "
                            "training rows never show gets a column of its own.")
                layers.add({"name": f"{name}_onehot", "type": "StringLookup", "adapt": True,
                            "output_mode": "one_hot", "max_tokens": tokens,
                            "pad_to_max_tokens": True, "inputs": name})
                joined.append(f"{name}_onehot")
            else:
                width = min(16, max(4, round(n ** 0.5)))
                layers.note(f"{column}: {n} values, each learned as {width} numbers (an "
                            "embedding); unseen values share one.")
                layers.add({"name": f"{name}_ids", "type": "StringLookup", "adapt": True,
                            "max_tokens": tokens, "inputs": name})
                layers.add({"name": f"{name}_vectors", "type": "Embedding",
                            "input_dim": tokens, "output_dim": width,
                            "inputs": f"{name}_ids"})
                layers.add({"name": f"{name}_flat", "type": "Flatten",
                            "inputs": f"{name}_vectors"})
                joined.append(f"{name}_flat")
        elif kinds[column] == "text":
            layers.note(f"{column}: free text, the 10000 most frequent words of the training "
                        "rows, 100 per row.")
            layers.add({"name": f"{name}_words", "type": "TextVectorization", "adapt": True,
                        "max_tokens": 10000, "output_sequence_length": 100, "inputs": name})
            layers.add({"name": f"{name}_vectors", "type": "Embedding", "input_dim": 10000,
                        "output_dim": 32, "inputs": f"{name}_words"})
            layers.add({"name": f"{name}_mean", "type": "GlobalAveragePooling1D",
                        "inputs": f"{name}_vectors"})
            joined.append(f"{name}_mean")
    last = joined[0]
    if len(joined) > 1:
        layers.add({"name": "joined", "type": "Concatenate", "inputs": joined})
        last = "joined"
    layers.add({"name": "hidden", "type": "Dense", "units": 64, "activation": "relu",
                "inputs": last})
    output = t.identifier(label, taken)
    if regression:
        layers.add({"name": "output", **head, "inputs": "hidden"}, "one number out")
        layers.note(t.TARGET_SCALE_NOTE)
        layers.add({"name": output, **t.TARGET_SCALE, "inputs": "output"})
    else:
        layers.add({"name": output, **head, "inputs": "hidden"}, "one output per class")
    model = Block().set("inputs", inputs, "one per column: the model takes the raw columns")
    model.set("layers", layers).set("outputs", output)
    return model, {names[c]: [c] for c in features}


def _stack(features: list[str], head: dict, regression: bool) -> Block:
    layers = (Items()
              .note("Learns each column's mean and variance from the training rows before "
                    "epoch 1.")
              .add({"type": "Normalization", "adapt": True})
              .add({"type": "Dense", "units": 64, "activation": "relu"}))
    if regression:
        layers.add(head, "one number out: a regression")
        layers.note(t.TARGET_SCALE_NOTE)
        layers.add(dict(t.TARGET_SCALE))
    else:
        layers.add(head, "one output per class")
    return Block().set("input_shape", [len(features)]).set("layers", layers)


def table(path: Path, rel_of, layout: dict[str, Path], label: str | None,
          delimiter: str | None) -> tuple[Block, Block, Block, str]:
    """(data, model, compile, what the table is) for a CSV or Parquet table; `layout`: the
    validation and test tables found beside it."""
    from cbrun.data.tables import _is_text

    shards, read = None, ""
    if path.is_dir():
        data, source, read, shards = read_folder(path, delimiter)
    else:
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
    distinct = {}
    if shards is not None:  # the label's classes and each text column's values, one pass
        distinct = _distinct(shards, [label] + [c for c in columns if c != label and
                                                 _is_text(data.column(c))])
    head, compile_, kind, split = _target(data, label, distinct.get(label))
    left_out = {c: f"{why}; cbrun takes numbers and text" for c in columns
                if c != label and (why := _kind(data.column(c)))}
    if "" in columns and label != "":  # pandas's to_csv writes its row index so
        left_out[""] = "a column without a name: a saved row index?"
    features = [c for c in columns if c != label and c not in left_out]
    if not features:
        raise UsageError(f"{path.name} has no column cbrun can take as an input besides "
                         f"{label!r}: " + "; ".join(f"{c or '(no name)'}: {w}"
                                               for c, w in left_out.items()))
    strings = [c for c in features if _is_text(data.column(c))]
    commas = [c for c in strings if _decimal_commas(data.column(c))]
    if commas and source == "csv":  # read as numbers with the data source's `decimal: ","`
        data = read_folder(path, delimiter, ",")[0] if shards else \
            read_table(path, delimiter, decimal=",")[0]
        strings = [c for c in features if _is_text(data.column(c))]
    kinds = {c: "number" for c in features}
    kinds.update({c: "text" if _is_free_text(data.column(c)) else "category" for c in strings})
    counts = {c: len(distinct[c]) if distinct.get(c) is not None else
              len(_categories(data.column(c))) for c in strings}
    block = Block().set("source", source).set("path", rel_of(path))
    for field in ("validation_path", "test_path"):
        if field in layout:
            block.set(field, rel_of(layout[field]))
    if delimiter:
        block.set("delimiter", delimiter)
    if commas and source == "csv":
        block.set("decimal", ",", f"{t.shown(commas)}: numbers with decimal commas")
    block.set("label", label, f"the target: {kind}")
    regression = split == "random"
    if strings:
        model, groups = _graph(features, label, kinds, counts, head, regression)
        block.set("features", _features_block(groups),
                  "one input per column, named after it")
        block.set("text", strings, "kept as strings: the model's own layers encode them")
    else:
        model = _stack(features, head, regression)
        block.set("features", features)
    for column, why in left_out.items():
        block.note(f"left out: {column!r} ({why})")
    if "validation_path" not in layout:
        block.set("validation_split", 0.2, t.split_note(split))
        block.set("split", split)
    block.set("batch_size", 32)
    if shards is not None:
        return block, model, compile_, (f"a {source} table of {len(shards.files)} files, "
                                        f"label {label!r}: {kind}; {read}")
    return block, model, compile_, (f"a {source} table of {data.num_rows} rows, label "
                                    f"{label!r}: {kind}")


def _features_block(groups: dict[str, list[str]]) -> Block:
    block = Block()
    for name, columns in groups.items():
        block.set(name, columns)
    return block
