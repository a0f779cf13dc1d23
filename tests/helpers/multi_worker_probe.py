"""One worker of a two-process MultiWorkerMirroredStrategy: a tiny model.fit on loopback.

Run as `python multi_worker_probe.py INDEX PORT0 PORT1`; prints PROBE-OK when fit returns.
tests/test_distribute.py runs two of them to learn whether Keras 3 trains under the strategy.
"""

import json
import os
import sys

index, ports = int(sys.argv[1]), sys.argv[2:4]
os.environ["TF_CONFIG"] = json.dumps({
    "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
    "task": {"type": "worker", "index": index}})

import keras
import numpy as np
import tensorflow as tf

strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
dataset = tf.data.Dataset.from_tensor_slices((x, x[:, :1])).batch(16)
model.fit(dataset, epochs=1, verbose=0)
print("PROBE-OK", flush=True)
