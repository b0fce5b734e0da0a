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


def check_cross_replica(loss, context):
    """Refuse a memory under several `tf.distribute` replicas without `cross_replica`."""
    if loss.memory is not None:
        raise ValueError(
            f"{type(loss).__name__}(memory_size={loss.memory_size}) under a tf.distribute "
            f"strategy with {context.num_replicas_in_sync} replicas needs cross_replica=True: "
            "the memory holds the global batches, the same on every replica."
        )


def mined_rows(loss, labels, embeddings, anchor_index=None):
    """What the batch is mined against: `(labels, embeddings, anchor_index, valid, pool)`.

    Without a memory, or outside a training step (`tftriplet.memory.in_training`:
    `evaluate`, where the memory is left as it is), the batch itself (`valid` and `pool`
    None). Else the `Pool` of the batch and `loss.memory` as it is now: the batch's rows
    are the anchors unless `anchor_index` (this replica's rows of a gathered global batch)
    is given; after the loss, `loss.memory.push(pool)` makes the batch enter it.

    Args:
        loss: a `tftriplet.losses.TripletLoss`.
        labels: the batch's class ids `(b,)`, standardized (the global batch under
            `tf.distribute`).
        embeddings: its embeddings `(b, D)`.
        anchor_index: int32 `(A,)`, the anchors among the batch's rows; None: every row.
    """
    memory = loss.memory
    if memory is None:
        return labels, embeddings, anchor_index, None, None
    if not in_training():
        memory.check_batch(embeddings)
        return labels, embeddings, anchor_index, None, None
    pool = memory.pool(labels, embeddings)
    anchors = pool.anchor_index if anchor_index is None else anchor_index
    return pool.labels, pool.embeddings, anchors, pool.valid, pool
