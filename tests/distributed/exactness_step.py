"""One SGD step for every loss in LOSSES, one fresh process per kind of distribution.

Run as a script by tests/distributed/test_exactness_distributed.py: logical devices, the
host-device count of XLA and MultiWorkerMirroredStrategy must be set up before the
framework initialises, so each mode is one process that covers every loss at once (the
model, data and step are those of distributed_step.py). Writes a JSON file.

    python exactness_step.py mirrored OUT   # 4 logical CPUs: per loss, one device; fit
                                            # under MirroredStrategy over 2 of them; a
                                            # custom step over all 4 at uneven local
                                            # sizes (one replica empty), with the largest
                                            # tensor of its traced graph
    python exactness_step.py jax OUT        # KERAS_BACKEND=jax, 2 host devices: per loss,
                                            # one device and keras.distribution.DataParallel
    python exactness_step.py worker OUT     # one MultiWorkerMirroredStrategy worker
                                            # (TF_CONFIG set by the caller), every loss
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: The losses checked across replicas, as distributed_step.make_loss reads them.
LOSSES = [
    {"strategy": "batch_all", "distance": "euclidean", "soft": False},
    {"strategy": "batch_all", "distance": "squared_euclidean", "soft": True},
    {"strategy": "batch_all", "distance": "cosine", "soft": False},
    {"strategy": "batch_hard", "distance": "euclidean", "soft": False},
    {"strategy": "semi_hard", "distance": "cosine", "soft": False},
]
#: The replica counts of the MirroredStrategy steps.
REPLICAS = (2, 4)
#: Local batch sizes of the 4-replica step: uneven, and one replica gets no rows at all.
UNEVEN_SIZES = (5, 0, 4, 7)


def loss_id(loss):
    return f"{loss['strategy']}-{loss['distance']}-{'soft' if loss['soft'] else 'hinge'}"


def use_loss(loss):
    """Make distributed_step.make_loss build ``loss``."""
    os.environ["TFTRIPLET_TEST_LOSS"] = json.dumps(loss)


def weights_of(model):
    return [w.tolist() for w in model.get_weights()]


# ---------------------------------------------------------------- MirroredStrategy


def mirrored_strategies(tf):
    """MirroredStrategy over the first 2 and over all 4 of 4 logical CPUs, in one process.

    Collective ops are keyed by group: two strategies over the same devices would reuse
    group key 1 with different group sizes, so each gets its own key range
    (``_collective_key_base``, the attribute TensorFlow's own tests set for this).
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * max(REPLICAS)
    )
    strategies = {}
    for n in REPLICAS:
        tf.distribute.MirroredStrategy._collective_key_base = 1000 * n
        strategies[n] = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(n)])
        assert strategies[n].num_replicas_in_sync == n
    return strategies


def static_replica_id(tf):
    """This replica's id as a Python int (MirroredStrategy traces one copy per replica)."""
    replica_id = tf.get_static_value(tf.distribute.get_replica_context().replica_id_in_sync_group)
    assert replica_id is not None
    return int(replica_id)


def uneven_step(tf, strategy, sizes):
    """One SGD step under ``strategy`` with local batch sizes ``sizes`` (a custom loop, as
    Keras' fit splits a batch evenly), and the largest tensors of its traced graph.

    Class ids are offset by 2**24, where float32 merges neighbours: the gathered labels
    must stay integers for the loss to be the one-device loss of the unshifted ids.

    The gathered batch has no static shape in the graph (each replica could hold any number
    of rows), so while tracing, the global labels ``(B,)``, embeddings ``(B, D)`` and the
    local index ``(b,)`` are annotated with the shapes the step knows; every tensor the loss
    derives from them then has a static shape, and the test bounds them by ``b * B``.
    """
    import numpy as np
    from distributed_step import GLOBAL_BATCH, build_model, data

    from tftriplet import distributed

    x, y = data()
    y = y + 2**24
    bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    assert bounds[-1] == GLOBAL_BATCH and len(sizes) == strategy.num_replicas_in_sync
    with strategy.scope():
        model = build_model(cross_replica=True)
        model.optimizer.build(model.trainable_variables)
    dim = model.output_shape[-1]
    original = distributed.gather_global_batch

    def annotated(context, labels, embeddings):
        global_labels, global_embeddings, local_index = original(context, labels, embeddings)
        return (
            tf.ensure_shape(global_labels, (GLOBAL_BATCH,)),
            tf.ensure_shape(global_embeddings, (GLOBAL_BATCH, dim)),
            tf.ensure_shape(local_index, (sizes[static_replica_id(tf)],)),
        )

    @tf.function
    def step():
        def replica_fn():
            r = static_replica_id(tf)
            x_local = tf.constant(x[bounds[r] : bounds[r + 1]])
            y_local = tf.constant(y[bounds[r] : bounds[r + 1]])
            with tf.GradientTape() as tape:
                loss = model.loss(y_local, model(x_local, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        return strategy.run(replica_fn)

    distributed.gather_global_batch = annotated
    try:
        graph = step.get_concrete_function().graph
    finally:
        distributed.gather_global_batch = original
    losses = step()
    return {
        "weights": weights_of(model),
        "losses": [float(v) for v in strategy.experimental_local_results(losses)],
        "local_batch_sizes": list(sizes),
        "trace": tensor_sizes(graph),
    }


#: The attributes that name the function bodies of control-flow and call ops.
FUNCTION_ATTRS = ("body", "cond", "then_branch", "else_branch", "branches", "f")


def function_graphs(graph, op, top):
    """The graphs of the functions ``op`` runs (a loop's body, a conditional's branches)."""
    graphs = []
    for attr in FUNCTION_ATTRS:
        try:
            value = op.get_attr(attr)
        except ValueError:
            continue
        for f in value if isinstance(value, list) else [value]:
            if not hasattr(f, "name"):
                continue
            function = graph._get_function(f.name) or top._get_function(f.name)
            assert function is not None, (op.name, attr, f.name)
            graphs.append(function.graph)
    return graphs


def tensor_sizes(graph, top=None, seen=None):
    """The largest fully shaped tensor of ``graph`` and of every function it runs (loop
    bodies, branches), in elements; and the ops with an output whose shape is not fully
    known (and not known to be empty), as ``[type, name, shape with None for unknown
    sizes, or None for an unknown rank]``."""
    import numpy as np

    top = graph if top is None else top
    seen = set() if seen is None else seen
    largest, unknown = 0, []
    for op in graph.get_operations():
        for t in op.outputs:
            if t.shape.rank is not None and t.shape.is_fully_defined():
                largest = max(largest, int(np.prod(t.shape.as_list())))
            elif t.shape.rank is None or 0 not in t.shape.as_list():
                shape = None if t.shape.rank is None else t.shape.as_list()
                unknown.append([op.type, op.name, shape])
        for inner in function_graphs(graph, op, top):
            if inner.name in seen:
                continue
            seen.add(inner.name)
            sub = tensor_sizes(inner, top, seen)
            largest = max(largest, sub["largest"])
            unknown += sub["unknown_shape_ops"]
    return {"largest": largest, "unknown_shape_ops": unknown, "functions": len(seen)}


def mirrored():
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    strategies = mirrored_strategies(tf)
    from distributed_step import build_model, data, fit_one_step, single_device

    results, seconds = {}, {}
    clock = time.perf_counter()

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = seconds.get(name, 0.0) + now - clock
        clock = now

    for loss in LOSSES:
        use_loss(loss)
        result = {"single": single_device()}
        lap("single")
        with strategies[2].scope():
            model = build_model(cross_replica=True)
        result["fit_2"] = fit_one_step(model, data())
        lap("fit_2")
        result["uneven_4"] = uneven_step(tf, strategies[4], UNEVEN_SIZES)
        lap("uneven_4")
        results[loss_id(loss)] = result
    results["seconds"] = seconds
    return results


# ---------------------------------------------------------------- JAX DataParallel


def jax_data_parallel():
    """One fit step per loss on one device and under keras.distribution.DataParallel.

    Needs KERAS_BACKEND=jax and XLA_FLAGS=--xla_force_host_platform_device_count=2 in the
    environment before JAX starts. The loss sees the global (sharded) batch, so
    ``cross_replica`` has nothing to gather; XLA partitions the computation.
    """
    import jax
    import keras

    assert keras.backend.backend() == "jax", keras.backend.backend()
    devices = keras.distribution.list_devices("cpu")
    assert len(devices) == 2, devices
    import numpy as np
    from distributed_step import GLOBAL_BATCH, LABELS, build_model, data

    x, y = data()
    results = {"devices": [str(d) for d in devices], "jax": jax.__version__}
    for loss in LOSSES:
        use_loss(loss)
        result = {}
        for key, distribution in (
            ("single", None),
            ("data_parallel", keras.distribution.DataParallel(devices=devices)),
        ):
            keras.distribution.set_distribution(distribution)
            try:
                model = build_model(cross_replica=True)
                initial = np.asarray(model(x))
                history = model.fit(
                    x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0
                )
            finally:
                keras.distribution.set_distribution(None)
            result[key] = {
                "weights": weights_of(model),
                "loss": float(history.history["loss"][0]),
                "initial_embeddings": initial.tolist(),
            }
            if distribution is not None:
                kernel = model.layers[0].kernel.value
                result[key]["kernel_devices"] = len(kernel.sharding.device_set)
        results[loss_id(loss)] = result
    assert LABELS.shape == (GLOBAL_BATCH,)
    return results


# ---------------------------------------------------------------- MultiWorkerMirroredStrategy


def worker():
    """One step per loss under MultiWorkerMirroredStrategy, as distributed_step.worker does
    it (a custom loop: Keras 3's fit does not run under this strategy), all losses under
    one strategy (a second MultiWorkerMirroredStrategy in a process is refused)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    from distributed_step import GLOBAL_BATCH, build_model, data

    x, y = data()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH).with_options(options)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    results = {"num_replicas": strategy.num_replicas_in_sync}
    for loss in LOSSES:
        use_loss(loss)
        with strategy.scope():
            model = build_model(cross_replica=True)
            model.optimizer.build(model.trainable_variables)

        def replica_step(x_local, y_local, model=model):
            with tf.GradientTape() as tape:
                value = model.loss(y_local, model(x_local, training=True))
            grads = tape.gradient(value, model.trainable_variables)
            model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return value, tf.shape(y_local)[0]

        @tf.function
        def step(batch, replica_step=replica_step):
            value, local_size = strategy.run(replica_step, args=batch)
            return (
                strategy.reduce("SUM", value, axis=None),
                strategy.gather(local_size[None], axis=0),
            )

        value, local_sizes = step(batch)
        results[loss_id(loss)] = {
            "weights": weights_of(model),
            "loss": float(value),
            "local_batch_sizes": [int(s) for s in local_sizes],
        }
    return results


def main(argv):
    mode, out = argv[1], argv[-1]
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if mode == "jax":
        # distributed_step pins the TensorFlow backend when imported: load Keras first.
        os.environ["KERAS_BACKEND"] = "jax"
        import keras  # noqa: F401

        result = jax_data_parallel()
    elif mode == "mirrored":
        result = mirrored()
    elif mode == "worker":
        result = worker()
    else:
        raise ValueError(f"mode must be mirrored, jax or worker; got {mode!r}.")
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv)
