"""A batch mined against a pool: the batch and its cross-batch memory, or the global batch.

With a memory (`tftriplet.memory`), the anchors are the batch's rows and their positives
and negatives come from the pool `[batch; memory]` of `b + N` rows, the memory's empty
rows left out (`valid`) and its rows constant (no gradient). The definitions are the
strategy's own with "batch" read as "pool" for `j` and `k`:

    batch-all:  sum_{i in batch} sum_{j, k in pool} h_ijk / #{positive h_ijk}
    batch-hard: mean over the anchors with a positive and a negative in the pool
    semi-hard:  mean over the (anchor, pool positive) pairs

Each batch-all anchor is mined against the pool through the engine's blocked kernels
(`O(b (b + N))` memory). After the loss the batch enters the memory. Under
`tf.distribute` with `cross_replica=True` the pool is the global batch and the memory,
which holds global batches (the same on every replica), and each replica's anchors are
its own rows of the global batch (`tftriplet.distributed`).

Reference:
    Wang, Zhang, Huang, Scott, "Cross-Batch Memory for Embedding Learning", CVPR 2020,
    https://arxiv.org/abs/1912.06798
"""

from __future__ import annotations

from keras import ops

from tftriplet import distributed
from tftriplet.memory import in_training


def replica_share(context, numerator, count):
    """One replica's share of the global-batch loss: its anchors' `numerator` over the
    count summed over the replicas (`max(total, 1)`), no gradient through the count."""
    count = ops.stop_gradient(ops.cast(count, numerator.dtype))
    total = distributed.sum_over_replicas(context, count)
    return numerator / ops.maximum(total, 1.0)


def memory_loss(loss, labels, embeddings, context=None):
    """The loss of a batch mined against `loss.memory`, which the batch then enters.

    Args:
        loss: a `tftriplet.losses.TripletLoss` with a memory.
        labels: the batch's (this replica's) class ids `(b,)`, standardized.
        embeddings: its embeddings `(b, D)`.
        context: the `tf.distribute` replica context with several replicas, or None.

    Returns:
        The scalar loss (this replica's share of it under `tf.distribute`). Outside a
        training step (`tftriplet.memory.in_training`: `evaluate`), the batch's own loss,
        and the memory is left as it is.
    """
    if context is not None and not loss.cross_replica:
        raise ValueError(
            f"{type(loss).__name__}(memory_size={loss.memory_size}) under a tf.distribute "
            f"strategy with {context.num_replicas_in_sync} replicas needs cross_replica=True: "
            "the memory holds the global batches, the same on every replica."
        )
    if context is not None:
        labels, embeddings, local_index = distributed.gather_global_batch(
            context, labels, embeddings
        )
    memory = loss.memory
    if not in_training():  # evaluation: the batch alone, the memory unchanged
        memory.check_batch(embeddings)
        if context is None:
            return loss.compute(labels, embeddings)
        return replica_share(context, *loss.anchor_terms(labels, embeddings, local_index))
    pool = memory.pool(labels, embeddings)
    if context is None:
        value = loss.compute(pool.labels, pool.embeddings, pool.anchor_index, pool.valid)
    else:
        value = replica_share(context, *loss.anchor_terms(
            pool.labels, pool.embeddings, local_index, pool.valid
        ))
    memory.push(pool)
    return value
