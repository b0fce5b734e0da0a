"""Global-batch (cross-replica) evaluation of triplet losses under `tf.distribute`.

Under a `tf.distribute` strategy with `N` replicas each replica sees `B / N` samples,
so a triplet loss computed per replica mines only triples inside that slice. In
cross-replica mode every replica instead

1. all-gathers the embeddings and the labels of all replicas (labels as integers),
2. mines each of its *local* anchors against the *global* batch, giving a numerator (the
   loss summed over its local anchors) and its share of the normaliser (for batch-all: the
   number of positive triples with a local anchor); only the local anchors' rows of the
   distance matrix are built, so a replica needs `O(b * B)` memory for `b` local and
   `B` global rows, never `B x B`,
3. all-reduces the normaliser and returns `numerator / global normaliser`.

The per-replica losses then sum to the single-device loss of the global batch:

```text
loss_r = sum_{anchors a on r} n_a / max(sum_{all anchors a} c_a, 1),   sum_r loss_r = L
```

Gradients: `ReplicaContext.all_gather`'s gradient all-reduces (sums) the upstream gradient
over replicas and hands each replica the rows it contributed, so replica `r` receives
`sum_s d loss_s / d e_r = dL / d e_r` for its own embeddings `e_r`. Keras' optimizer
sums the per-replica weight gradients `dL/de_r . de_r/dw` over replicas, which is `dL/dw`:
the single-device gradient of the global-batch loss. Keras does not rescale a scalar loss
(`reduce_values` returns a shape-`()` value unchanged, and `TripletLoss.__call__`
bypasses it anyway), so nothing here may be divided by `N` again.

Per-replica mode (`cross_replica=False`) under a strategy returns the replica's own loss
divided by `N`: the sum over replicas is then the mean of the per-replica losses, the same
convention Keras applies to its own `sum_over_batch_size` losses.

Only the TensorFlow backend has `tf.distribute`; under JAX and PyTorch, outside a
strategy, in a cross-replica context, or with one replica, the plain loss is returned.

Reference:
    TensorFlow issue 47344 (global-batch triplet mining under `tf.distribute`);
    pytorch-metric-learning's `DistributedLossWrapper` (all-gather for PyTorch DDP).
"""

from __future__ import annotations

import keras


def replica_context():
    """The `tf.distribute` replica context when there is more than one replica, else None.

    None under the JAX and PyTorch backends, outside any strategy, in a cross-replica
    context (e.g. directly under `strategy.scope()`), and with one replica in sync.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if not tf.distribute.has_strategy():
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context


def gather_global_batch(context, labels, embeddings):
    """All-gather labels and embeddings; locate this replica's rows in the global batch.

    Args:
        context: a `tf.distribute.ReplicaContext`.
        labels: local class ids of shape `(b,)`, any integer (or float) dtype.
        embeddings: local embeddings of shape `(b, D)`.

    Returns:
        `(global_labels, global_embeddings, local_index)`: labels `(B,)` (integers as
            int64, so that no id passes through a float; the cast is a bijection for every
            integer dtype), embeddings `(B, D)` (replicas in replica-id order, the order
            `all_gather` concatenates in), and the int32 indices `(b,)` of this replica's
            rows in them. Local batch sizes may differ between replicas.
    """
    import tensorflow as tf

    if labels.dtype.is_integer:
        labels = tf.cast(labels, tf.int64)
    labels = _placed(context, labels)
    embeddings = _placed(context, embeddings)
    # Separate calls: the labels carry no gradient, the embeddings' gradient is all-reduced.
    global_embeddings = context.all_gather(embeddings, axis=0)
    # all_gather forgets the static shape; the embedding dimension is the local one
    global_embeddings = tf.ensure_shape(global_embeddings, [None, embeddings.shape[1]])
    global_labels = context.all_gather(labels, axis=0)
    local_size = _placed(context, tf.shape(embeddings, out_type=tf.int32)[:1])
    sizes = context.all_gather(local_size, axis=0)
    start = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    local_index = start + tf.range(local_size[0], dtype=tf.int32)
    return global_labels, global_embeddings, local_index


def _placed(context, x):
    """`x` with its device set: `all_gather` sends a tensor to `x.device`, and under
    MultiWorkerMirroredStrategy with one device per worker, tensors traced in
    `tf.function` carry no device (TF then raises "destinations can not be empty")."""
    import tensorflow as tf

    if x.device:
        return x
    devices = context.strategy.extended.worker_devices
    if len(devices) != 1:  # several local replicas each run under their device's scope
        return x
    with tf.device(devices[0]):
        return tf.identity(x)


def sum_over_replicas(context, value):
    """`value` summed over the replicas of `context` (an all-reduce)."""
    import tensorflow as tf

    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)
