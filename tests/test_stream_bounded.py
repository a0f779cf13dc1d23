"""A streamed table keeps nothing per row: each row's split is drawn from (seed, its
position) whenever the row is read, its labels are counted by split rather than kept, and
the baseline, the split warnings and the data checks read those counts. What the
streamed split guarantees (shares within binomial noise, per class) is checked here; the
memory it takes at two table sizes is measured by bench/bench_stream.py (docs/speed.md)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import cli, cli_output, only_run, write_config
from datafiles import text_graph_config
from test_stream import _load, stream_config, write_shards

from tests.helpers.light import run_cbrun


def _skewed(folder: Path, n: int = 20_000, sort: int = 0) -> Path:
    """A Parquet table of n rows in 4 files, row groups of 1,000, its label 70/20/10%."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(5)
    species = rng.choice(np.array(["cat", "dog", "owl"]), n, p=[0.7, 0.2, 0.1])
    if sort:  # by the label, the largest class last (or first: `sort` < 0)
        species = np.sort(species)[::-1] if sort < 0 else np.sort(species)
    table = pa.table({"height_mm": rng.normal(size=n).astype(np.float32),
                      "weight_g": rng.normal(size=n).astype(np.float32),
                      "colour": rng.choice(np.array(["red", "blue"]), n),
                      "species": species})
    folder.mkdir(parents=True)
    for i in range(4):
        pq.write_table(table.slice(i * n // 4, n // 4), folder / f"part-{i}.parquet",
                       row_group_size=1000)
    return folder


def test_a_rows_split_is_a_pure_function_of_seed_and_position():
    from cbrun.data.rowsplit import Keep, RowSplit

    split = RowSplit(7, 100_000, 0.2, 0.1, "random")
    whole = split.codes(0, 100_000)
    # However the rows are cut into reads (pieces, record batches), each gets its own.
    cuts = [0, 3, 4096, 50_001, 99_999, 100_000]
    assert np.array_equal(np.concatenate([split.codes(a, b - a) for a, b in
                                          itertools.pairwise(cuts)]), whole)
    assert not np.array_equal(RowSplit(8, 100_000, 0.2, 0.1, "random").codes(0, 100_000),
                              whole)
    # Shares within binomial noise (4 standard deviations) of the asked ones: test 10%,
    # validation 20% of the rest.
    for code, share in ((1, 0.9 * 0.2), (2, 0.1)):
        sd = np.sqrt(share * (1 - share) / len(whole))
        assert abs(np.mean(whole == code) - share) < 4 * sd, code
    # tail: exactly Keras's cut, by position.
    tail = RowSplit(7, 1000, 0.2, 0.1, "tail").codes(0, 1000)
    assert (tail[:720] == 0).all() and (tail[720:900] == 1).all() and (tail[900:] == 2).all()
    kept = Keep(7, 0.25, 0).mask(0, 100_000)
    assert abs(kept.mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 100_000)
    assert not np.array_equal(kept, Keep(7, 0.25, 1).mask(0, 100_000))


@pytest.fixture(scope="module")
def skewed(tmp_path_factory):
    root = tmp_path_factory.mktemp("skewed")
    _skewed(root / "pq")
    return root


def _arrays(value, limit: int) -> list[tuple[str, int]]:
    """(where, size) of every numpy array reachable from `value`'s attributes."""
    found, seen, todo = [], set(), [("split", value)]
    while todo:
        where, item = todo.pop()
        if id(item) in seen or isinstance(item, (str, bytes, int, float, type(None))):
            continue
        seen.add(id(item))
        if isinstance(item, np.ndarray):
            found.append((where, item.size))
        elif isinstance(item, dict):
            todo += [(f"{where}[{k!r}]", v) for k, v in item.items()]
        elif isinstance(item, (list, tuple)):
            todo += [(f"{where}[{i}]", v) for i, v in enumerate(item[:limit])]
        elif hasattr(item, "__dict__") and type(item).__module__.startswith("cbrun"):
            todo += [(f"{where}.{k}", v) for k, v in vars(item).items()]
    return found


def test_a_streamed_table_keeps_no_array_of_its_rows(skewed):
    from cbrun.data.rowsplit import RowSplit
    from cbrun.data.stream import Targets

    splits = _load(skewed, stream_config("pq", validation_split=0.2, test_split=0.1))
    rows = splits.train.table
    pieces = len(rows.pieces)  # 20 row groups
    assert pieces == 20
    for name, split in splits.named().items():
        assert isinstance(split.y, Targets), name
        big = [(where, size) for where, size in _arrays(split, 50) if size > 3 * pieces]
        assert big == [], (name, big)
    # Each row's split is the same function of (seed, position) evaluated again: the
    # training targets are the labels of the rows it gives code 0, in file order.
    import pyarrow.parquet as pq

    labels = np.concatenate([pq.read_table(p, columns=["species"]).column(0).to_numpy(
        zero_copy_only=False) for p in sorted((skewed / "pq").glob("*.parquet"))])
    codes = RowSplit(rows.split.seed, len(labels), 0.2, 0.1, "random").codes(0, len(labels))
    classes = splits.artifacts["table.json"]["classes"]["species"]
    for name, code in (("train", 0), ("validation", 1), ("test", 2)):
        truth = np.searchsorted(classes, labels[codes == code])
        assert np.array_equal(np.asarray(getattr(splits, name).y), truth), name


def test_a_streamed_split_keeps_each_class_share_within_binomial_noise(skewed):
    splits = _load(skewed, stream_config("pq", validation_split=0.2, test_split=0.1))
    summary = splits.artifacts["split.json"]
    assert summary["method"] == "stratified" and "binomial" in summary["drawn"]
    rows = summary["rows"]
    assert sum(rows.values()) == 20_000
    values, train = splits.train.y.counted()
    for split, share in (("validation", 0.9 * 0.2), ("test", 0.1)):
        mine = dict(zip(*getattr(splits, split).y.counted(), strict=True))
        for value, count in zip(values, train, strict=True):
            total = sum(getattr(splits, s).y.counted()[1][list(values).index(value)]
                        for s in ("train", "validation", "test"))
            sd = np.sqrt(share * (1 - share) / total)
            assert abs(mine[value] / total - share) < 4 * sd, (split, value)
    # data.fraction keeps a share drawn row by row too: the same rows each time it is read.
    half = _load(skewed, stream_config("pq", validation_split=0.2, test_split=0.1),
                 fraction=0.5)
    again = _load(skewed, stream_config("pq", validation_split=0.2, test_split=0.1),
                  fraction=0.5)
    kept = half.artifacts["fraction.json"]["rows"]["train"]
    assert abs(kept - rows["train"] / 2) < 4 * np.sqrt(rows["train"] / 4)
    assert np.array_equal(np.asarray(half.train.y), np.asarray(again.train.y))


def test_a_sorted_streamed_table_with_tail_warns_at_validate(tmp_path):
    _skewed(tmp_path / "pq", 2000, sort=-1)  # owls, dogs, then 1,400 cats
    config = stream_config("pq", validation_split=0.2, test_split=0, split="tail")
    result = run_cbrun(["validate", write_config(tmp_path, config)])
    said = " ".join(result.commands[0].out.split())
    assert result.heavy == [], said
    assert "the rows are sorted by their label" in said, said
    assert "the validation split lacks 2 of the 3 classes training has" in said, said


def test_a_held_out_class_that_training_lacks_is_named_at_validate(tmp_path, capsys):
    _skewed(tmp_path / "pq", 2000, sort=1)  # 1,400 cats, dogs, then 200 owls
    config = stream_config("pq", validation_split=0.1, test_split=0, split="tail")
    code, out, err = cli_output(capsys, "validate", write_config(tmp_path, config))
    said = " ".join((out + err).split())
    assert code == 2, said
    # 200 tail rows of owls, which are the last 10% of the sorted table: all of them.
    assert "has label value 'owl' in column 'species' that the training rows never show" \
        in said, said


@pytest.fixture(scope="module")
def baselines(tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline")
    write_shards(root / "shards")
    found = {}
    for stream in (True, False):
        config = stream_config("shards", epochs=1, validation_split=0, test_split=0,
                               stream=stream)
        path = write_config(root, config, f"run-{stream}.yaml")
        runs = root / f"runs-{stream}"
        # In this process: the baseline is the subject, not anything of a process's own.
        assert cli("train", path, "--runs-dir", runs, "-q") == 0
        found[stream] = json.loads((only_run(runs) / "run.json").read_text())["baseline"]
    found["root"] = root
    return found


def test_a_streamed_runs_baseline_comes_from_its_counted_labels(baselines):
    streamed, whole = baselines[True], baselines[False]
    assert streamed["predicts"] == whole["predicts"] == "the training class shares"
    assert set(streamed["metrics"]) == set(whole["metrics"])
    for name, value in whole["metrics"].items():
        assert streamed["metrics"][name] == pytest.approx(value, rel=1e-5), name


# ---------------------------------------------------------------- data check on shards

@pytest.mark.parametrize("source", ["parquet", "csv"])
def test_data_check_on_shards_reads_footers_the_label_and_a_sample_and_says_so(
        tmp_path, capsys, monkeypatch, source):
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from cbrun.data import sampled

    folder = _skewed(tmp_path / "pq")
    victim = folder / "part-3.parquet"
    rows = pq.read_table(victim).to_pylist()
    rows[-2]["weight_g"] = None  # the last row group of the last file
    pq.write_table(pa.Table.from_pylist(rows), victim, row_group_size=1000)
    if source == "csv":
        (tmp_path / "csv").mkdir()
        for part in sorted(folder.glob("*.parquet")):
            pacsv.write_csv(pq.read_table(part), tmp_path / "csv" / f"{part.stem}.csv")
        folder = tmp_path / "csv"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sampled, "SAMPLE_ROWS", 3000)
    code, out, _ = cli_output(capsys, "data", "check", folder.name, "--label", "species",
                              "--validation-split", "0.2", "--json")
    assert code == 0, out
    report = json.loads(out)
    read = report["read"]
    footers = "4 footers, " if source == "parquet" else ""
    assert read.startswith(f"{footers}the label column and a sample of 3,000 of 20,000 rows "
                           "(15.0%"), read
    # Rows and classes are counted over every row, each row's split drawn as a stream
    # draws it; the columns' distinct values are the sample's.
    from cbrun.data.rowsplit import RowSplit

    codes = RowSplit(42, 20_000, 0.2, 0.0, "random").codes(0, 20_000)
    assert report["rows"] == {"train": int((codes == 0).sum()),
                              "validation": int((codes == 1).sum())}
    (label,) = report["labels"]
    assert sum(map(sum, label["counts"].values())) == 20_000
    height = next(c for c in report["columns"] if c["name"] == "height_mm")
    assert height["distinct"] == 3000
    if source == "parquet":  # a missing value outside the sample, from the footers
        assert any("column 'weight_g' of pq/part-3.parquet has missing values (row 4999 of "
                   "the file)" in f["message"] for f in report["findings"]), report["findings"]


def test_data_check_of_a_config_samples_only_the_tables_its_run_streams(tmp_path, capsys,
                                                                           monkeypatch):
    """A run that reads its table whole draws its held-out rows exactly: its data check
    reads every row, to show those very rows; a streamed one's is sampled."""
    from cbrun.data import sampled

    _skewed(tmp_path / "pq")
    monkeypatch.setattr(sampled, "SAMPLE_ROWS", 3000)
    for stream, read in ((False, "every row of 4 files"), (True, "4 footers, the label")):
        path = write_config(tmp_path, stream_config("pq", stream=stream), f"s{stream}.yaml")
        code, out, _ = cli_output(capsys, "data", "check", path, "--json")
        assert code == 0, out
        assert json.loads(out)["read"].startswith(read), (stream, out)


# ---------------------------------------------------------------- words in the one pass

def _review_shards(folder: Path, n: int = 400) -> Path:
    """Reviews in 4 Parquet files: words of mixed case, punctuation, a few rare ones."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    vocabulary = ["Good", "good!", "BAD,", "bad", "film", "plot.", "it's", "the", "a",
                  "Ending?", "café", "x-ray", "(great)", "dull", "ÉTÉ"]
    weights = np.linspace(3, 0.2, len(vocabulary))
    rows = []
    for i in range(n):
        words = rng.choice(vocabulary, 6, p=weights / weights.sum())
        rows.append({"review": "  ".join(words) if i % 7 else "\t".join(words),
                     "stars": float(i % 5), "length": float(i), "verdict": ["neg", "pos"][i % 2]})
    table = pa.Table.from_pylist(rows)
    folder.mkdir(parents=True)
    for i in range(4):
        pq.write_table(table.slice(i * n // 4, n // 4), folder / f"part-{i}.parquet")
    return folder


@pytest.mark.parametrize("layer", [{"max_tokens": 9}, {}, {"output_mode": "multi_hot",
                                                          "max_tokens": 6}])
def test_text_vectorization_is_set_from_the_one_pass_as_adapt_would_learn_it(tmp_path,
                                                                            layer):
    import keras

    from cbrun.engine.adapt import _set_words

    _review_shards(tmp_path / "reviews")
    config = text_graph_config("words", {
        "source": "parquet", "path": "reviews", "label": "verdict", "stream": True,
        "features": {"review": ["review"], "stars": ["stars"], "length": ["length"]},
        "text": ["review"], "validation_split": 0.25, "batch_size": 16})
    splits = _load(tmp_path, config)
    texts = np.asarray(splits.train.x["review"][:])[:, 0]
    adapted = keras.layers.TextVectorization(**layer)
    adapted.adapt(texts.astype(str))
    made = keras.layers.TextVectorization(**layer)
    assert _set_words(made, ["review"], splits.train.stats)  # no second read of the rows
    assert made.get_vocabulary() == adapted.get_vocabulary()
    counted = splits.train.stats["words"]["review"]
    assert counted["distinct"] == len(adapted.get_vocabulary()) - 2 or layer


# ---------------------------------------------------------------- predict on shards

def test_predict_on_a_shard_folder_writes_what_predict_on_one_file_writes(
        baselines, capsys, monkeypatch):
    """A chunk of whole batches at a time, appended to the output: the same rows, columns
    and values as the same table given as one file, in each format."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cbrun.engine import predict_stream

    monkeypatch.setattr(predict_stream, "CHUNK_ROWS", 48)  # 3 batches of 16
    root = baselines["root"]
    run = only_run(root / "runs-True")
    whole = pa.concat_tables([pq.read_table(p) for p in
                              sorted((root / "shards").glob("*.parquet"))])
    pq.write_table(whole, root / "whole.parquet")
    for suffix in (".csv", ".parquet", ".npz"):
        for given, name in (("shards", "streamed"), ("whole.parquet", "one")):
            code, out, err = cli_output(capsys, "predict", run, root / given, "-o",
                                        root / f"{name}{suffix}", "--keep", "colour",
                                        "--top-k", "2")
            assert code == 0 and out.startswith("320 predictions"), (out, err)
        streamed, one = root / f"streamed{suffix}", root / f"one{suffix}"
        if suffix == ".csv":
            assert streamed.read_bytes() == one.read_bytes()
        elif suffix == ".parquet":
            assert pq.read_table(streamed).equals(pq.read_table(one))
            assert pq.ParquetFile(streamed).num_row_groups == 7  # written as it went
        else:
            with np.load(streamed) as a, np.load(one) as b:
                assert a.files == b.files
                for key in a.files:
                    assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no parts left
