"""One MultiWorkerMirroredStrategy worker of a small training run under
tftriplet.BackupAndRestore, for tests/resume/test_resume_workers.py.

    python worker_run.py BACKUP_DIR OUT      # TF_CONFIG names the cluster and this worker

Keras 3 cannot run ``fit`` under MultiWorkerMirroredStrategy (tensorflow/tensorflow#72388),
so the loop is written out and drives BackupAndRestore through the callback hooks, as a
custom loop does: the chief writes the backups, every worker restores them. The batches
come from one tftriplet.pk_dataset, split across the workers (auto-shard by data), and the
loss gathers the whole P x K batch (cross_replica=True). Prints ``RESTORED <step>`` and
``STEP <step>`` (after the step's backup) like train_run.py, and pauses at
$TFTRIPLET_PAUSE_AT until killed. Writes OUT (JSON): the final weights.
"""

from __future__ import annotations

import json
import os
import sys
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

import tensorflow as tf  # noqa: E402
from train_run import BATCHES_PER_EPOCH, EPOCHS, SEED, K, P, build_model, data, weights  # noqa: E402

import tftriplet  # noqa: E402


def step_of(model):
    return int(model.optimizer.iterations.value.numpy())  # a MirroredVariable has no int()


def train(strategy, backup_dir):
    with strategy.scope():
        model = build_model(cross_replica=True)
        model.optimizer.build(model.trainable_variables)
    x, y = data(0)
    dataset = tftriplet.pk_dataset(
        x, y, classes_per_batch=P, samples_per_class=K, batches_per_epoch=BATCHES_PER_EPOCH,
        seed=SEED,
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    batches = strategy.experimental_distribute_dataset(dataset.with_options(options))

    def replica_step(x_local, y_local):
        with tf.GradientTape() as tape:
            loss = model.loss(y_local, model(x_local, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))

    @tf.function
    def step(batch):
        strategy.run(replica_step, args=batch)

    backup = tftriplet.BackupAndRestore(backup_dir, dataset, save_freq=3)
    backup.set_model(model)
    backup.on_train_begin()
    print(f"RESTORED {step_of(model)}", flush=True)
    pause_at = int(os.environ.get("TFTRIPLET_PAUSE_AT", "-1"))
    for epoch in range(backup.initial_epoch, EPOCHS):
        backup.on_epoch_begin(epoch)
        iterator = iter(batches)  # a new pass per epoch, started where the backup left off
        for batch in range(BATCHES_PER_EPOCH - backup.first_step):
            step(next(iterator))
            backup.on_train_batch_end(batch)
            done = step_of(model)
            print(f"STEP {done}", flush=True)
            if done == pause_at:
                print(f"PAUSED {done}", flush=True)
                threading.Event().wait()  # until the test kills this process
        backup.on_epoch_end(epoch)
    backup.on_train_end()
    return model


def main(argv):
    backup_dir, out = argv[1], argv[2]
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    model = train(strategy, backup_dir)
    with open(out, "w") as f:
        json.dump({"weights": weights(model), "replicas": strategy.num_replicas_in_sync}, f)


if __name__ == "__main__":
    main(sys.argv)
