"""`model.fit` with a cross-batch memory under the Keras backend of this process.

Run as a script by tests/memory/test_memory_fit.py (one process per backend):

    KERAS_BACKEND=jax python fit_run.py OUT

For each strategy (and, under TensorFlow, with and without `jit_compile`) it fits a linear
model for one epoch over fixed batches with `validation_data`, once with a memory and
once without, and records what the test needs to replay the run independently: the
inputs, the weights at the start of every step, the loss Keras logged after every step
(a running mean over the epoch), the memory's contents and step count at the end. It also
records the error `fit` raises when the memory is not attached. Writes OUT (JSON).
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tftriplet  # noqa: E402

BATCH, STEPS, MEMORY, WARMUP, MARGIN = 6, 6, 10, 1, 0.5
LOSSES = {
    "batch_all": tftriplet.BatchAllTripletLoss,
    "batch_hard": tftriplet.BatchHardTripletLoss,
    "semi_hard": tftriplet.SemiHardTripletLoss,
}


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * STEPS, 4)).astype("float32")
    y = rng.integers(0, 3, size=BATCH * STEPS).astype("int64")
    return x, y


def model(strategy, memory_size, jit_compile=False, attach=True):
    kernel = np.random.default_rng(1).normal(size=(4, 3)).astype("float32")
    net = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(3, kernel_initializer=keras.initializers.Constant(kernel)),
    ])
    warmup = WARMUP if memory_size else 0
    loss = LOSSES[strategy](margin=MARGIN, memory_size=memory_size, memory_warmup=warmup)
    net.compile(keras.optimizers.SGD(0.1), loss, jit_compile=jit_compile)
    if memory_size and attach:
        tftriplet.attach_memory(net)
    return net


class Record(keras.callbacks.Callback):
    """The weights before each step and the logged loss after it."""

    def __init__(self):
        super().__init__()
        self.weights, self.logged = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.weights.append([np.asarray(w).tolist() for w in self.model.get_weights()])

    def on_train_batch_end(self, batch, logs=None):
        self.logged.append(float(logs["loss"]))


def fit(strategy, memory_size, jit_compile):
    x, y = data()
    net, record = model(strategy, memory_size, jit_compile), Record()
    net.fit(x, y, batch_size=BATCH, shuffle=False, epochs=1, verbose=0, callbacks=[record],
            validation_data=(x[:BATCH] + 1.0, y[:BATCH]))
    result = {"weights": record.weights, "logged": record.logged}
    if memory_size:
        labels, embeddings = net.loss.memory.contents()
        result.update(memory_labels=labels.tolist(), memory_embeddings=embeddings.tolist(),
                      memory_steps=net.loss.memory.steps)
    return result


def unattached_error():
    """What fit says when the memory is not attached (None: it trains)."""
    x, y = data()
    try:
        model("batch_all", MEMORY, attach=False).fit(x, y, batch_size=BATCH, verbose=0)
    except ValueError as err:
        return str(err)
    return None


def main(out):
    jit = (False, True) if keras.backend.backend() == "tensorflow" else (False,)
    runs = {
        f"{strategy}-{'xla' if jit_compile else 'plain'}": {
            "memory": fit(strategy, MEMORY, jit_compile),
            "alone": fit(strategy, 0, jit_compile),
        }
        for strategy in LOSSES
        for jit_compile in jit
    }
    x, y = data()
    result = {"backend": keras.backend.backend(), "x": x.tolist(), "y": y.tolist(),
              "runs": runs, "unattached": unattached_error()}
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])
