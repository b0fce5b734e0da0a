"""A few steps of `fit` with a cross-batch memory, under MirroredStrategy or on one device.

Run as a script by tests/distributed/test_memory_distributed.py, in a fresh process
(logical devices must be set up before TensorFlow initialises):

    python memory_fit.py mirrored N OUT   # N logical CPUs, MirroredStrategy, cross_replica
    python memory_fit.py single OUT       # one device, the same global batches
    python memory_fit.py refused N OUT    # MirroredStrategy without cross_replica: the error

Writes OUT (JSON): the weights after `fit`, the losses Keras logged per epoch (one step
each), and the memory's contents and step count.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np  # noqa: E402
from distributed_step import build_model, logged_loss_factor, mirrored_strategy  # noqa: E402

import tftriplet  # noqa: E402

GLOBAL_BATCH, STEPS, MEMORY, WARMUP = 8, 5, 12, 1


def batches():
    """`STEPS` global batches of 8 rows, 4 classes, drawn once."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(STEPS * GLOBAL_BATCH, 5)).astype(np.float32)
    y = rng.integers(0, 4, size=STEPS * GLOBAL_BATCH).astype(np.int64)
    return x, y


def run(strategy=None, cross_replica=True):
    os.environ["TFTRIPLET_TEST_LOSS"] = json.dumps(
        {"strategy": os.environ.get("TFTRIPLET_MEMORY_STRATEGY", "batch_all"),
         "memory_size": MEMORY, "memory_warmup": WARMUP}
    )
    replicas = 1 if strategy is None else strategy.num_replicas_in_sync
    if strategy is None:
        model = build_model(cross_replica=False)
    else:
        with strategy.scope():
            model = build_model(cross_replica=cross_replica)
    tftriplet.attach_memory(model)
    x, y = batches()
    losses = []
    for step in range(STEPS):  # one fit per step: the same batches, whatever the sharding
        rows = slice(step * GLOBAL_BATCH, (step + 1) * GLOBAL_BATCH)
        history = model.fit(x[rows], y[rows], batch_size=GLOBAL_BATCH, epochs=1,
                            shuffle=False, verbose=0)
        losses.append(history.history["loss"][0] * logged_loss_factor(replicas))
    labels, embeddings = model.loss.memory.contents()
    return {
        "weights": [w.tolist() for w in model.get_weights()],
        "losses": losses,
        "memory_labels": labels.tolist(),
        "memory_embeddings": embeddings.tolist(),
        "memory_steps": model.loss.memory.steps,
    }


def main(argv):
    if argv[1] == "mirrored":
        result = run(mirrored_strategy(int(argv[2])))
    elif argv[1] == "refused":
        try:
            run(mirrored_strategy(int(argv[2])), cross_replica=False)
            result = {"error": None}
        except ValueError as err:
            result = {"error": str(err)}
    else:
        result = run()
    with open(argv[-1], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv)
