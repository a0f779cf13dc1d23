"""Real data files for the data-source tests: a table with numeric and string columns, the
same as Parquet, class folders of PNG and JPEG images, a two-input npz, a Python loader."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SPECIES = ["cat", "dog", "fox"]
COLOURS = ["red", "green", "blue"]


def table_rows(n: int = 150, seed: int = 0) -> list[dict]:
    """Raw measurements in millimetres and grams: three species, separable, on scales a
    network cannot digest without normalising."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        s = int(rng.integers(3))
        rows.append({"height_mm": round(1000 + 400 * s + rng.normal(0, 120), 1),
                     "weight_g": round(5000 + 1500 * s + rng.normal(0, 600), 1),
                     "colour": COLOURS[int(rng.integers(3))],
                     "species": SPECIES[s]})
    return rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_images(root: Path, per_class: int = 12, size: int = 16, seed: int = 0) -> Path:
    """Two classes (a bar, a square) on noise, alternating PNG and JPEG files."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for c, name in enumerate(["bar", "square"]):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = (rng.random((size, size, 3)) * 60).astype(np.uint8)
            if c:
                image[size // 4:3 * size // 4, size // 4:3 * size // 4] = 230
            else:
                image[size // 2 - 2:size // 2 + 2, :] = 230
            encoded = tf.io.encode_png(image) if i % 2 else tf.io.encode_jpeg(image)
            (root / name / f"{i:02d}.{'png' if i % 2 else 'jpg'}").write_bytes(
                encoded.numpy())
    return root


def write_two_input_npz(path: Path, n: int = 60) -> Path:
    rng = np.random.default_rng(1)
    story = rng.normal(size=(n, 5)).astype("float32")
    question = rng.normal(size=(n, 3)).astype("float32")
    answer = (story[:, 0] + question[:, 0] > 0).astype("int32")
    np.savez(path, s=story, q=question, a=answer)
    return path


LOADER = '''
import numpy as np


def load(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] - x[:, 1] > 0).astype("int32")
    return {"train": (x[:40], y[:40]), "validation": (x[40:50], y[40:50]),
            "test": (x[50:], y[50:])}
'''


def table_config(name: str, data: dict, units: int = 3, adapt: bool = True,
                 inputs: int = 3, epochs: int = 3) -> dict:
    layers = [{"type": "Normalization", "adapt": True}] if adapt else []
    layers += [{"type": "Dense", "units": 16, "activation": "relu"},
               {"type": "Dense", "units": units, "activation": "softmax"}]
    return {"name": name, "seed": 3, "data": data,
            "model": {"input_shape": [inputs], "layers": layers},
            "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.01},
                        "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
            "fit": {"epochs": epochs}}


def image_config(name: str, data: dict, epochs: int = 3) -> dict:
    return {"name": name, "seed": 3,
            "data": {"source": "images", "image_size": [16, 16], "batch_size": 4, **data},
            "model": {"input_shape": [16, 16, 3], "layers": [
                {"type": "Rescaling", "scale": 1 / 255},
                {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
                {"type": "Flatten"},
                {"type": "Dense", "units": 2, "activation": "softmax"}]},
            "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy",
                        "metrics": ["accuracy"]},
            "fit": {"epochs": epochs}}


PRAISE = ["great", "lovely", "superb", "moving", "clever"]
SCORN = ["awful", "dull", "clumsy", "tedious", "flat"]
FILLER = ["the", "a", "film", "plot", "was", "very", "and", "it", "cast", "ending"]


def review_rows(n: int = 160, seed: int = 0) -> list[dict]:
    """Short reviews whose words give the verdict away, a star category and a length that
    is raw (unnormalised) and uninformative."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        good = i % 2
        words = [*rng.choice(FILLER, 5), *rng.choice(PRAISE if good else SCORN, 2)]
        rng.shuffle(words)
        rows.append({"review": " ".join(words), "stars": ["one", "two", "three"][i % 3],
                     "length": float(400 + rng.integers(0, 300)),
                     "verdict": "pos" if good else "neg"})
    return rows


def text_graph_config(name: str, data: dict, epochs: int = 3) -> dict:
    """A graph over a table's three named inputs: raw text through an adapted
    TextVectorization, a category id, a raw number through an adapted Normalization."""
    layers = [
        {"name": "words", "type": "TextVectorization", "adapt": True, "max_tokens": 40,
         "output_sequence_length": 8, "inputs": "review"},
        {"name": "embedded", "type": "Embedding", "input_dim": 40, "output_dim": 8,
         "inputs": "words"},
        {"name": "pooled", "type": "GlobalAveragePooling1D", "inputs": "embedded"},
        {"name": "scaled", "type": "Normalization", "adapt": True, "inputs": "length"},
        {"name": "joined", "type": "Concatenate", "inputs": ["pooled", "stars", "scaled"]},
        {"name": "verdict", "type": "Dense", "units": 2, "activation": "softmax",
         "inputs": "joined"},
    ]
    return {"name": name, "seed": 5, "data": data,
            "model": {"inputs": {"review": {"shape": [1], "dtype": "string"},
                                 "stars": {"shape": [1]}, "length": {"shape": [1]}},
                      "layers": layers, "outputs": "verdict"},
            "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.02},
                        "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
            "fit": {"epochs": epochs}}


REVIEWS_DATA = {"source": "csv", "path": "reviews.csv", "label": "verdict",
                "features": {"review": ["review"], "stars": ["stars"], "length": ["length"]},
                "text": ["review"], "validation_split": 0.25, "batch_size": 16}


def damage_pixels(path: Path, checksums: str = "fixed") -> Path:
    """Flip the compressed pixel bytes of a PNG, keeping its signature, header and IEND:
    its ends look whole. checksums "fixed": each chunk's CRC recomputed, so only a decoder
    finds the damage; "stale": the CRCs left as they were, as a bad disk or transfer
    leaves them."""
    import struct
    import zlib

    data = bytearray(path.read_bytes())
    at = 8
    while at < len(data):
        length = struct.unpack(">I", data[at:at + 4])[0]
        if data[at + 4:at + 8] == b"IDAT":
            body = slice(at + 10, at + 8 + length - 4)  # past the zlib header, before its sum
            data[body] = bytes(b ^ 0x5A for b in data[body])
            if checksums == "fixed":
                data[at + 8 + length:at + 12 + length] = struct.pack(
                    ">I", zlib.crc32(bytes(data[at + 4:at + 8 + length])))
        at += 12 + length
    path.write_bytes(bytes(data))
    return path
