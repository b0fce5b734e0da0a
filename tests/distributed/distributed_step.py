"""One SGD step of a small deterministic model, under tf.distribute or on one device.

Run as a script by tests/test_distributed.py, in a fresh process: logical devices and
MultiWorkerMirroredStrategy must be set up before TensorFlow initialises. Writes a JSON
file with the weights after the step and the loss Keras reported for it.

    python distributed_step.py mirrored N OUT     # N logical CPUs, MirroredStrategy
    python distributed_step.py single OUT         # one device, the global batch
    python distributed_step.py gradient N even|uneven OUT
                                                  # d loss / d local embeddings per replica
    python distributed_step.py worker OUT         # one MultiWorkerMirroredStrategy worker
                                                  # (TF_CONFIG set by the caller)
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

MARGIN = 0.2
LEARNING_RATE = 0.5
GLOBAL_BATCH = 16
# Every class has 4 members spread over replicas; with 4 replicas of 4 rows only two
# replicas hold a positive pair, with 2 replicas of 8 rows each holds a few.
LABELS = np.array([0, 0, 1, 2, 1, 3, 3, 2, 2, 0, 1, 3, 3, 1, 0, 2], dtype=np.int64)


def logged_loss_factor(num_replicas):
    """What to multiply the loss Keras logs under ``num_replicas`` by to get the global loss.

    Keras 3.15 sums the per-replica scalar losses it logs (``unscale_loss_for_distribution``)
    and so logs the global loss; older Keras (3.6, the ``oldest`` tox env) averages them.
    The weight updates are exact either way.
    """
    import keras.src.losses.loss as keras_loss

    return 1 if hasattr(keras_loss, "unscale_loss_for_distribution") else num_replicas


def data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(GLOBAL_BATCH, 5)).astype(np.float32)
    return x, LABELS


def initial_weights():
    rng = np.random.default_rng(11)
    return [
        rng.normal(scale=0.5, size=(5, 6)).astype(np.float32),
        rng.normal(scale=0.1, size=(6,)).astype(np.float32),
        rng.normal(scale=0.5, size=(6, 3)).astype(np.float32),
        rng.normal(scale=0.1, size=(3,)).astype(np.float32),
    ]


def make_loss(cross_replica=False):
    """BatchAllTripletLoss(margin=MARGIN), or the loss named by $TFTRIPLET_TEST_LOSS, a JSON
    fixture loss object such as {"strategy": "semi_hard", "distance": "cosine", "soft": false}."""
    import tftriplet

    spec = json.loads(os.environ.get("TFTRIPLET_TEST_LOSS", '{"strategy": "batch_all"}'))
    classes = {
        "batch_all": tftriplet.BatchAllTripletLoss,
        "batch_hard": tftriplet.BatchHardTripletLoss,
        "semi_hard": tftriplet.SemiHardTripletLoss,
    }
    return classes[spec["strategy"]](
        margin=spec.get("margin", MARGIN),
        distance=spec.get("distance"),
        soft=spec.get("soft", False),
        cross_replica=cross_replica,
        memory_size=spec.get("memory_size", 0),
        memory_warmup=spec.get("memory_warmup", 0),
    )


def build_model(cross_replica):
    import keras

    w = initial_weights()
    init = keras.initializers.Constant
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(
                6, "tanh", kernel_initializer=init(w[0]), bias_initializer=init(w[1])
            ),
            keras.layers.Dense(3, kernel_initializer=init(w[2]), bias_initializer=init(w[3])),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE),
        loss=make_loss(cross_replica),
    )
    return model


def fit_one_step(model, dataset_or_arrays):
    if isinstance(dataset_or_arrays, tf.data.Dataset):
        history = model.fit(dataset_or_arrays, epochs=1, verbose=0)
    else:
        x, y = dataset_or_arrays
        history = model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 1
    return {
        "weights": [w.tolist() for w in model.get_weights()],
        "loss": float(history.history["loss"][0]),
    }


def single_device():
    """Plain loss on the whole global batch, one device, no strategy."""
    model = build_model(cross_replica=False)
    embeddings = model(data()[0]).numpy()
    result = fit_one_step(model, data())
    result["initial_embeddings"] = embeddings.tolist()
    return result


def per_replica_reference(num_replicas):
    """What per-replica mode should do, on one device: SGD on the mean of the losses of
    the contiguous slices (the replicas' shares of the global batch)."""
    model = build_model(cross_replica=False)
    loss_fn = make_loss()
    x, y = data()
    local = GLOBAL_BATCH // num_replicas
    with tf.GradientTape() as tape:
        out = model(x)
        losses = [
            loss_fn(y[r * local : (r + 1) * local], out[r * local : (r + 1) * local])
            for r in range(num_replicas)
        ]
        loss = tf.add_n(losses) / num_replicas
    grads = tape.gradient(loss, model.trainable_weights)
    weights = [
        (w - LEARNING_RATE * g).numpy() for w, g in zip(model.trainable_weights, grads, strict=True)
    ]
    return {"weights": [w.tolist() for w in weights], "loss": float(loss)}


def triple_counts(num_replicas):
    from tftriplet import batch_all_triplet_statistics

    x, y = data()
    emb = build_model(False)(x)
    local = GLOBAL_BATCH // num_replicas
    per_replica = [
        int(batch_all_triplet_statistics(y[s : s + local], emb[s : s + local])["num_valid"])
        for s in range(0, GLOBAL_BATCH, local)
    ]
    total = int(batch_all_triplet_statistics(y, emb)["num_valid"])
    return {"global_valid": total, "per_replica_valid": per_replica}


def mirrored_strategy(num_replicas):
    """MirroredStrategy over ``num_replicas`` logical CPUs (before TF initialises)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_replicas
    )
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(num_replicas)])
    assert strategy.num_replicas_in_sync == num_replicas
    return strategy


def gradient(num_replicas, uneven=False):
    """Each replica's d(its loss share)/d(its local embeddings), straight from the tape.

    Class ids are offset by 2**24, where float32 merges neighbours: the gathered labels
    must stay integers for the loss to be right. ``uneven``: replica 0 gets 5 rows and the
    others share the rest (all_gather concatenates unequal slices).
    """
    strategy = mirrored_strategy(num_replicas)
    rng = np.random.default_rng(3)
    embeddings = rng.normal(size=(GLOBAL_BATCH, 4)).astype(np.float32)
    labels = LABELS + 2**24
    loss_fn = make_loss(cross_replica=True)
    if uneven:
        rest = np.linspace(5, GLOBAL_BATCH, num_replicas).round().astype(int).tolist()
        bounds = tf.constant([0, *rest])
    else:
        bounds = tf.range(0, GLOBAL_BATCH + 1, GLOBAL_BATCH // num_replicas)

    @tf.function
    def step():
        def replica_fn():
            r = tf.distribute.get_replica_context().replica_id_in_sync_group
            e = tf.constant(embeddings)[bounds[r] : bounds[r + 1]]
            y = tf.constant(labels)[bounds[r] : bounds[r + 1]]
            with tf.GradientTape() as tape:
                tape.watch(e)
                loss = loss_fn(y, e)
            return loss, tape.gradient(loss, e)

        return strategy.run(replica_fn)

    losses, grads = step()
    return {
        "embeddings": embeddings.tolist(),
        "labels": labels.tolist(),
        "losses": [float(v) for v in strategy.experimental_local_results(losses)],
        "gradient": np.concatenate(
            [g.numpy() for g in strategy.experimental_local_results(grads)]
        ).tolist(),
    }


def mirrored(num_replicas):
    strategy = mirrored_strategy(num_replicas)
    result = {
        "single": single_device(),
        "per_replica_reference": per_replica_reference(num_replicas),
    }
    result.update(triple_counts(num_replicas))
    for key, cross_replica in (("cross_replica", True), ("per_replica", False)):
        with strategy.scope():
            model = build_model(cross_replica)
        result[key] = fit_one_step(model, data())
    return result


def worker():
    """One step under MultiWorkerMirroredStrategy, as a custom training loop.

    Keras 3's fit() does not run under MultiWorkerMirroredStrategy (Keras 3.15 with TF
    2.21: its symbolic build reduces the nested (x, y) batch, and its "auto" log
    reduction reduces scalar logs along axis 0, both ValueErrors before or after any loss
    runs; tensorflow/tensorflow#72388). So the step is written out: the per-replica losses
    are summed for the report (they sum to the global-batch loss) and Keras' optimizer
    sums the gradients over replicas, as in fit().
    """
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    x, y = data()
    with strategy.scope():
        model = build_model(cross_replica=True)
        model.optimizer.build(model.trainable_variables)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH).with_options(options)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

    def replica_step(x_local, y_local):
        with tf.GradientTape() as tape:
            loss = model.loss(y_local, model(x_local, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, tf.shape(y_local)[0]

    @tf.function
    def step(batch):
        loss, local_size = strategy.run(replica_step, args=batch)
        return (
            strategy.reduce("SUM", loss, axis=None),
            strategy.gather(local_size[None], axis=0),
        )

    loss, local_sizes = step(batch)
    return {
        "weights": [w.tolist() for w in model.get_weights()],
        "loss": float(loss),
        "num_replicas": strategy.num_replicas_in_sync,
        "local_batch_sizes": [int(s) for s in local_sizes],
    }


def main(argv):
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    mode, out = argv[1], argv[-1]
    if mode == "mirrored":
        result = mirrored(int(argv[2]))
    elif mode == "gradient":
        result = gradient(int(argv[2]), uneven=argv[3] == "uneven")
    elif mode == "single":
        result = {"single": single_device()}
    elif mode == "worker":
        result = worker()
    else:
        raise ValueError(f"mode must be mirrored, gradient, single or worker; got {mode!r}.")
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv)
