"""The bench's methods: the inputs, and one zero-argument step a method.

Each `*_step` returns `(step, sync)`: `step()` runs one loss + gradient (or the `matmul`
product) and `sync(result)` forces its result to the host, so that the time of asynchronous
backends is the time of the work.
"""

from __future__ import annotations


def make_inputs(batch_size, dim, per_class, seed=0):
    """Float32 embeddings `(B, D)` and int32 labels with `per_class` samples a class."""
    import numpy as np

    rng = np.random.default_rng(seed)
    embeddings = (rng.standard_normal((batch_size, dim)) / np.sqrt(dim)).astype("float32")
    labels = (np.arange(batch_size) // max(per_class, 1)).astype("int32")
    rng.shuffle(labels)
    return labels, embeddings


def method_step(method, backend, labels, embeddings, margin, jit, row_sort, replicas):
    """`(step, sync, backend)` of `method`: `pml` always runs in PyTorch and
    `cross_replica` in TensorFlow, whatever `backend` asks."""
    if method == "matmul":
        return (*matmul_step(embeddings, backend), backend)
    if method == "cross_replica":
        return (*cross_replica_step(labels, embeddings, margin, replicas), "tensorflow")
    if method == "pml":
        return (*pml_step(labels, embeddings, margin), "torch")
    return (*keras_step(method, backend, labels, embeddings, margin, jit, row_sort), backend)


def keras_step(method, backend, labels, embeddings, margin, jit, row_sort="auto"):
    """A loss + gradient step of `batch_all_triplet_loss(method=...)` for the Keras backend
    in this process: a `tf.function` (with `jit_compile=jit`), a `jax.jit`, or eager
    PyTorch autograd. `row_sort` other than `"auto"` forces the sorted form's kernel."""
    from tftriplet import batch_all_triplet_loss, engine
    from tftriplet.inputs import standardize_inputs

    def loss_fn(y, x):
        if method == "sorted" and row_sort != "auto":
            y, x = standardize_inputs(y, x)
            return engine.batch_all_statistics(y, x, margin, "euclidean", method="sorted",
                                               row_sort=row_sort)["loss"]
        return batch_all_triplet_loss(y, x, margin=margin, method=method)[0]

    if backend == "tensorflow":
        import tensorflow as tf

        y, x = tf.constant(labels), tf.constant(embeddings)

        @tf.function(jit_compile=jit)
        def step():
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = loss_fn(y, x)
            return loss, tape.gradient(loss, x)

        return step, sync_loss_and_gradient
    if backend == "jax":
        import jax

        fn = jax.jit(jax.value_and_grad(loss_fn, argnums=1))
        y, x = jax.numpy.asarray(labels), jax.numpy.asarray(embeddings)
        return (lambda: fn(y, x)), sync_loss_and_gradient
    import torch

    return torch_step(loss_fn, torch.as_tensor(labels), embeddings)


def torch_step(loss_fn, y, embeddings):
    """A loss + gradient step through torch autograd, and how to force its result."""
    import torch

    x = torch.as_tensor(embeddings).requires_grad_(True)

    def step():
        x.grad = None
        loss = loss_fn(y, x)
        loss.backward()
        return loss, x.grad

    return step, sync_loss_and_gradient


def pml_step(labels, embeddings, margin):
    """pytorch-metric-learning's all-triplets `TripletMarginLoss` (the package's docstring
    gives its distance and reducer), through torch autograd."""
    import torch
    from pytorch_metric_learning import distances, losses, reducers

    loss_obj = losses.TripletMarginLoss(
        margin=margin,
        distance=distances.LpDistance(p=2, power=1, normalize_embeddings=False),
        reducer=reducers.AvgNonZeroReducer(),
        triplets_per_anchor="all",
    )
    # pml takes (embeddings, labels), the reverse of a Keras loss
    return torch_step(lambda y, x: loss_obj(x, y), torch.as_tensor(labels).long(), embeddings)


def matmul_step(embeddings, backend):
    """`e @ e^T` alone, in the backend's compiled or graph form."""
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(embeddings)
        step = tf.function(lambda: tf.matmul(x, x, transpose_b=True))
    elif backend == "jax":
        import jax

        x = jax.numpy.asarray(embeddings)
        fn = jax.jit(lambda x: x @ x.T)
        step = lambda: fn(x)  # noqa: E731
    else:
        import torch

        x = torch.as_tensor(embeddings)
        step = lambda: x @ x.T  # noqa: E731
    return step, lambda r: float(r[0, 0]) * 0.0


def cross_replica_step(labels, embeddings, margin, replicas):
    """One `MirroredStrategy` step of `BatchAllTripletLoss(cross_replica=True)`: every
    replica's loss share and its gradient; returns the summed loss (the global-batch loss).
    The logical devices must exist already (`configure_replicas`)."""
    import tensorflow as tf

    import tftriplet

    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:replicas]
    strategy = tf.distribute.MirroredStrategy(devices)
    loss_fn = tftriplet.BatchAllTripletLoss(margin=margin, cross_replica=True)
    b = len(labels)
    bounds = [b * r // replicas for r in range(replicas + 1)]

    def local(context):
        r = context.replica_id_in_sync_group
        lo, hi = bounds[r], bounds[r + 1]
        return tf.constant(labels[lo:hi]), tf.constant(embeddings[lo:hi])

    y = strategy.experimental_distribute_values_from_function(lambda c: local(c)[0])
    x = strategy.experimental_distribute_values_from_function(lambda c: local(c)[1])

    def replica_step(y, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = loss_fn(y, x)
        return loss, tape.gradient(loss, x)

    @tf.function
    def step():
        loss, grad = strategy.run(replica_step, args=(y, x))
        total = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        return total, strategy.experimental_local_results(grad)[0]

    return step, sync_loss_and_gradient


def configure_replicas(replicas):
    """Split the CPU into `replicas` logical devices; must run before TensorFlow starts."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)]
    )


def sync_loss_and_gradient(result):
    """Force a `(loss, gradient)` result to the host."""
    return float(result[0]) + float(result[1][0, 0])
