"""`source: keras`: the datasets of `keras.datasets`, loaded by Keras itself from its cache
(`$KERAS_HOME/datasets/`, default ~/.keras/datasets/), downloading when online."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from cbrun.config.data.common import DataSource

# What keras.datasets.<name>.load_data() looks for under <KERAS_HOME>/datasets/ (Keras 3.15).
CACHE_FILES = {
    "mnist": ["mnist.npz"],
    "fashion_mnist": [f"fashion-mnist/{f}" for f in (
        "train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")],
    "cifar10": ["cifar-10-batches-py-target_archive"],
    "cifar100": ["cifar-100-python-target_archive"],
    "imdb": ["imdb.npz"],
    "reuters": ["reuters.npz"],
    "boston_housing": ["boston_housing.npz"],
    "california_housing": ["california_housing.npz"],
}
SEQUENCES = ("imdb", "reuters")


class KerasData(DataSource):
    """A dataset from keras.datasets: its training part trains (minus validation_split),
    its own test part is the test split."""

    source: Literal["keras"] = Field(description="A dataset of keras.datasets.")
    name: Literal["mnist", "fashion_mnist", "cifar10", "cifar100", "imdb", "reuters",
                  "boston_housing", "california_housing"] = Field(
        description="Which keras.datasets module to load.")
    test: bool = Field(True, description="Evaluate Keras's test part once after training. "
                                         "Defaults to true.")
    num_words: int | None = Field(
        None, gt=0, description="imdb, reuters: keep the most frequent words only.")
    maxlen: int | None = Field(
        None, gt=0, description="imdb, reuters: pad or cut every sequence to this length "
                                "(required for them: a batch needs one length).")

    @model_validator(mode="after")
    def _sequences(self) -> KerasData:
        if self.name in SEQUENCES and self.maxlen is None:
            raise ValueError(f"{self.name} holds word sequences of different lengths; set "
                             "`maxlen` (e.g. 200) to pad or cut them to one length")
        if self.name not in SEQUENCES and (self.maxlen or self.num_words):
            raise ValueError(f"maxlen and num_words are for imdb and reuters, not {self.name}")
        if self.test_split:
            raise ValueError("Keras's datasets bring their own test part; use `test: true`, "
                             "not test_split")
        return self

    @property
    def has_test(self) -> bool:
        return self.test
