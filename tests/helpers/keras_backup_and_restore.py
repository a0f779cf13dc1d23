"""The same training written by hand in Keras, resumed with keras.callbacks.BackupAndRestore.

Usage: python keras_backup_and_restore.py OUT_DIR EPOCHS [KILL_AFTER_EPOCH]
With KILL_AFTER_EPOCH the process SIGKILLs itself right after that epoch's backup is
written; run again with the same OUT_DIR and BackupAndRestore continues the run. Used by
test_resume.py to show that Keras's own resume is not exact. (Killed at a random instant
instead, Keras's backup file can be left half-written and unreadable by h5py.)
"""

import os
import signal
import sys
from pathlib import Path

import keras
import numpy as np

from cbrun.config.data import DigitsData
from cbrun.engine.sources import load_splits

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
keras.utils.set_random_seed(7)
arrays = load_splits(DigitsData(validation_split=0.2), out, seed=7)
model = keras.Sequential([
    keras.Input((64,)),
    keras.layers.Rescaling(0.0625),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dropout(0.3),
    keras.layers.Dense(10, activation="softmax"),
])


class KillAfter(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


kill = [KillAfter(int(sys.argv[3]))] if len(sys.argv) > 3 else []
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
model.fit(arrays.train.x, arrays.train.y, batch_size=64, epochs=int(sys.argv[2]), shuffle=True,
          validation_data=(arrays.validation.x, arrays.validation.y), verbose=0, callbacks=[
              keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, min_delta=0.008,
                                            restore_best_weights=True),
              keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=0,
                                                min_delta=0.012),
              keras.callbacks.CSVLogger(str(out / "log.csv"), append=True),
              keras.callbacks.BackupAndRestore(str(out / "backup")),
              *kill,
          ])
model.save(out / "model.keras")
np.save(out / "done.npy", np.array([1]))
