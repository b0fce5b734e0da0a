"""A small training run under tftriplet.BackupAndRestore, for the resume tests.

Run as a script by tests/resume/test_resume_backends.py, in a process the test may kill:

    python train_run.py SAMPLER SAVE_FREQ BACKUP_DIR OUT

SAMPLER is ``pkbatches`` (tftriplet.PKBatches) or ``dataset`` (tftriplet.pk_dataset);
SAVE_FREQ is ``epoch`` or a number of steps; the Keras backend is $KERAS_BACKEND. The
process prints ``RESTORED <step>`` when fit starts (the optimizer step the backup brought
back, 0 without one; also written to OUT.restored.json with the weights) and ``STEP
<step>`` after every step, after the backup of that step.
With $TFTRIPLET_PAUSE_AT=<step> it prints ``PAUSED <step>`` after that step and waits
to be killed, so the test kills it at a known point; with $TFTRIPLET_PAUSE_IN_BACKUP=<n>
it prints ``PAUSED IN BACKUP`` and waits while writing its n-th backup, once the new
generation's files are written and before ``latest.json`` names it. At the end it writes
OUT (JSON): the weights, RetrievalEvaluation's history, and with $TFTRIPLET_EVERY_STEP=1
the weights after every step. With $TFTRIPLET_MEMORY=<N> the loss has a cross-batch memory
of N samples (attached to the model; BackupAndRestore finds it through model.loss), and
OUT holds the memory's contents at the end too.
"""

from __future__ import annotations

import json
import os
import sys
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tftriplet  # noqa: E402

EPOCHS = 4
BATCHES_PER_EPOCH = 5
P, K, SEED = 3, 2, 3


def data(seed, classes=6, per_class=5, dim=4):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(classes, dim))
    y = np.repeat(np.arange(classes), per_class).astype(np.int64)
    return (centres[y] + rng.normal(size=(len(y), dim))).astype(np.float32), y


def build_model(cross_replica=False):
    """Constant initial weights drawn with NumPy: the same in every process and backend."""
    rng = np.random.default_rng(11)
    shapes = [(4, 8), (8,), (8, 3), (3,)]
    w = [rng.normal(scale=0.5, size=s).astype(np.float32) for s in shapes]
    init = keras.initializers.Constant
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(
                8, "tanh", kernel_initializer=init(w[0]), bias_initializer=init(w[1])
            ),
            keras.layers.Dense(3, kernel_initializer=init(w[2]), bias_initializer=init(w[3])),
        ]
    )
    # Adam: its moments and its step count (bias correction) must come back too.
    memory = int(os.environ.get("TFTRIPLET_MEMORY", "0"))
    loss = tftriplet.BatchAllTripletLoss(margin=0.5, cross_replica=cross_replica,
                                         memory_size=memory, memory_warmup=2 if memory else 0)
    model.compile(keras.optimizers.Adam(0.01), loss)
    if memory:
        tftriplet.attach_memory(model)
    return model


def sampler(kind):
    x, y = data(0)
    if kind == "pkbatches":
        return tftriplet.PKBatches(x, y, P, K, batches_per_epoch=BATCHES_PER_EPOCH, seed=SEED)
    return tftriplet.pk_dataset(
        x, y, classes_per_batch=P, samples_per_class=K, batches_per_epoch=BATCHES_PER_EPOCH,
        seed=SEED,
    )


def weights(model):
    return [np.asarray(w).tolist() for w in model.get_weights()]


class Progress(keras.callbacks.Callback):
    """Reports each step on stdout; pauses at $TFTRIPLET_PAUSE_AT until killed."""

    def __init__(self, record, out):
        super().__init__()
        self.out = out
        self.pause_at = int(os.environ.get("TFTRIPLET_PAUSE_AT", "-1"))
        self.every_step = os.environ.get("TFTRIPLET_EVERY_STEP") == "1"
        self.record = record

    def step(self):
        return int(self.model.optimizer.iterations)

    def on_train_begin(self, logs=None):
        self.record["restored"] = {"step": self.step(), "weights": weights(self.model)}
        with open(f"{self.out}.restored.json", "w") as f:  # read even if this run is killed
            json.dump(self.record["restored"], f)
        print(f"RESTORED {self.step()}", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        step = self.step()
        if self.every_step:
            self.record["steps"][step] = weights(self.model)
        print(f"STEP {step}", flush=True)
        if step == self.pause_at:
            print(f"PAUSED {step}", flush=True)
            threading.Event().wait()  # until the test kills this process


def pause_in_backup(n):
    """Wait, to be killed, in the n-th replacement of a backup's latest.json."""
    replace, count = os.replace, [0]

    def pausing_replace(source, target):
        if str(target).endswith("latest.json"):
            count[0] += 1
            if count[0] == n:
                print("PAUSED IN BACKUP", flush=True)
                threading.Event().wait()
        replace(source, target)

    os.replace = pausing_replace


def main(argv):
    kind, save_freq, backup_dir, out = argv[1:5]
    save_freq = save_freq if save_freq == "epoch" else int(save_freq)
    if "TFTRIPLET_PAUSE_IN_BACKUP" in os.environ:
        pause_in_backup(int(os.environ["TFTRIPLET_PAUSE_IN_BACKUP"]))
    batches = sampler(kind)
    evaluation = tftriplet.RetrievalEvaluation(*data(1), ks=(1, 3))
    backup = tftriplet.BackupAndRestore(backup_dir, batches, evaluation, save_freq=save_freq)
    model = build_model()
    record = {"steps": {}}
    callbacks = [evaluation, backup, Progress(record, out)]
    model.fit(batches, epochs=EPOCHS, verbose=0, callbacks=callbacks)
    record.update(
        weights=weights(model),
        history={str(e): r for e, r in evaluation.history.items()},
        backup_left=os.path.exists(backup_dir),
    )
    if model.loss.memory is not None:
        labels, embeddings = model.loss.memory.contents()
        record["memory"] = {"labels": labels.tolist(), "embeddings": embeddings.tolist(),
                            "steps": model.loss.memory.steps}
    with open(out, "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    main(sys.argv)
