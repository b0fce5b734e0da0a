"""Batch-all: every valid triple of the batch, averaged over the positive ones (FaceNet).

The function, its statistics and the Keras `Loss` live here; the engine that evaluates
them (`tftriplet.engine`) sits below. `method` chooses between its forms, which all give
the same numbers: every triple (`"dense"`, `(B, B, B)` tensors) or the hinge counted by
sorting (`"sorted"`, `O(B^2)` memory, `O(block B)` in anchor blocks). Which kernel runs for
a batch is the engine's plan (`tftriplet.engine.plan.plan_batch_all`).
"""

from __future__ import annotations

import keras

from tftriplet import engine
from tftriplet.config import PACKAGE
from tftriplet.distances import resolve_distance
from tftriplet.inputs import standardize_inputs
from tftriplet.losses.base import TripletLoss
from tftriplet.margins import check_margin


def batch_all_triplet_statistics(
    labels,
    embeddings,
    margin=0.2,
    squared=False,
    distance=None,
    soft=False,
    method="auto",
    anchor_block=None,
):
    """Loss and counts of the batch-all triplet loss.

    Like `batch_all_triplet_loss`, with the counts.

    Returns:
        A dict of scalars: `loss`, `fraction_positive`, `num_positive` and `num_valid`
        (counts as floats in the loss's dtype: exact below 2**24 triples in float32).

    Example:
        ```python
        stats = batch_all_triplet_statistics([0, 0, 1], [[0.0], [0.1], [1.0]])
        float(stats["num_valid"])  # 2.0
        ```
    """
    labels, embeddings = standardize_inputs(labels, embeddings)
    return engine.batch_all_statistics(
        labels, embeddings, check_margin(margin), resolve_distance(distance, squared), soft,
        method=method, anchor_block=anchor_block,
    )


def batch_all_triplet_loss(
    labels,
    embeddings,
    margin=0.2,
    squared=False,
    distance=None,
    soft=False,
    method="auto",
    anchor_block=None,
):
    """Batch-all triplet loss (FaceNet): every valid triple, averaged over the positive ones.

    A triple `(i, j, k)` is valid when `i, j, k` are distinct, `y_i == y_j` and
    `y_i != y_k`. Over the valid triples:

        h_ijk = max(d(i, j) - d(i, k) + margin, 0)
        loss = sum(h_ijk) / #{h_ijk > 0}
        fraction_positive = #{h_ijk > 0} / #{valid triples}

    Both are 0, never NaN, when there is no valid or no positive triple. With `soft=True`
    the loss is the mean of `softplus(d(i, j) - d(i, k))` over all valid triples and
    `margin` only defines `fraction_positive`.

    Args:
        labels: integer class ids, shape `(B,)` or `(B, 1)`, any integer dtype (floats
            holding integers are accepted); compared exactly, never through a float.
        embeddings: float tensor of shape `(B, D)`. float16 and bfloat16 are computed in
            float32; float64 stays float64.
        margin: the margin `m`, at least 0.
        squared: shorthand for `distance="squared_euclidean"`.
        distance: `"euclidean"` (default), `"squared_euclidean"` or `"cosine"`.
        soft: the soft margin `softplus(d(i, j) - d(i, k))` instead of the hinge.
        method: `"dense"` (every triple: `(B, B, B)` tensors, or `(block, B, B)` with
            `anchor_block`), `"sorted"` (the hinge counted by sorting: `O(B^2)` memory,
            `(block, B)` tensors in anchor blocks for large batches) or `"auto"` (dense up
            to 32 samples; above, sorted for the hinge and dense in blocks of at most 32
            anchors for the soft margin). All give the same numbers.
        anchor_block: anchors per block (a positive int), or None to choose it from the
            batch size. Smaller blocks use less memory.

    Non-finite embeddings give a NaN loss and a NaN fraction whatever the method; an
    empty batch gives 0 and 0.

    Returns:
        `(loss, fraction_positive)`, two scalars.

    Example:
        ```python
        loss, fraction = batch_all_triplet_loss([0, 0, 1], [[0.0], [0.1], [1.0]])
        ```

    Reference:
        Schroff, Kalenichenko, Philbin. "FaceNet: A Unified Embedding for Face Recognition
        and Clustering", CVPR 2015. https://arxiv.org/abs/1503.03832
    """
    stats = batch_all_triplet_statistics(
        labels, embeddings, margin, squared, distance, soft, method, anchor_block
    )
    return stats["loss"], stats["fraction_positive"]


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchAllTripletLoss(TripletLoss):
    """Batch-all triplet loss (FaceNet) as a Keras loss.

    Every valid triple `(i, j, k)` of the batch (`y_i == y_j != y_k`, distinct indices)
    contributes:

        loss = sum_valid max(d(i, j) - d(i, k) + margin, 0) / #{positive triples}

    or, with `soft=True`, the mean over all valid triples of
    `softplus(d(i, j) - d(i, k))`. 0, never NaN, when nothing is counted. See
    `batch_all_triplet_loss`.

    Args:
        margin: the margin `m` (default 0.2).
        soft: the soft margin instead of the hinge.
        method: `"auto"` (default), `"dense"` or `"sorted"`; the same numbers, see
            `batch_all_triplet_loss`.
        anchor_block: anchors per block of the blocked forms (a positive int), or None
            (default) to choose it from the batch size.
        cross_replica: under `tf.distribute`, mine every local anchor against the global
            batch and divide by the global count, so that training matches one device on
            the global batch (`tftriplet.distributed`).
        distance: `"euclidean"` (default), `"squared_euclidean"` or `"cosine"`.
        squared: shorthand for `distance="squared_euclidean"`.
        memory_size: with `N > 0`, the positives and negatives of the batch's anchors come
            from the batch and the `N` most recent earlier samples too (docs/memory.md,
            `tftriplet.attach_memory`); 0 (default): the batch alone.
        memory_warmup: training steps before the memory is used (default 0).
        name: the loss name.
        reduction: accepted for Keras compatibility; the loss is one scalar per batch.
        dtype: the dtype of the returned loss (computed in float32 at least).

    `y_true`: integer class ids `(B,)` or `(B, 1)`; `y_pred`: embeddings `(B, D)`.

    Example:
        ```python
        model.compile(optimizer="adam",
                      loss=tftriplet.BatchAllTripletLoss(margin=0.2),
                      metrics=[tftriplet.FractionPositiveTriplets(margin=0.2)])
        ```

    Reference:
        Schroff et al., "FaceNet", CVPR 2015, https://arxiv.org/abs/1503.03832 ;
        Hermans et al., "In Defense of the Triplet Loss for Person Re-Identification",
        2017, https://arxiv.org/abs/1703.07737 ;
        Wang et al., "Cross-Batch Memory for Embedding Learning", CVPR 2020,
        https://arxiv.org/abs/1912.06798 (`memory_size`)
    """

    strategy = "batch_all"
    count_name = "num_valid"
    supports_soft = True

    def __init__(
        self,
        margin=0.2,
        *,
        soft=False,
        method="auto",
        anchor_block=None,
        cross_replica=False,
        distance=None,
        squared=False,
        memory_size=0,
        memory_warmup=0,
        name=None,
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(
            margin,
            soft=soft,
            cross_replica=cross_replica,
            distance=distance,
            squared=squared,
            memory_size=memory_size,
            memory_warmup=memory_warmup,
            name=name,
            reduction=reduction,
            dtype=dtype,
        )
        # the plan checks method, then anchor_block, then refuses the soft margin's sorted
        # form: every bad option fails now, not in fit()
        engine.plan_batch_all(None, soft=self.soft, method=method, anchor_block=anchor_block,
                              mode="eager")
        self.method = method
        self.anchor_block = engine.check_anchor_block(anchor_block)  # an int, or None

    def sums(self, labels, embeddings, anchor_index=None, valid=None):
        """Computed by the engine's plan for this batch; in anchor blocks whenever
        `anchor_index` is given (`O(A B)` memory for the hinge, `O(block B^2)` for the
        soft margin)."""
        return engine.batch_all_sums(
            labels, embeddings, self.margin, self.distance, self.soft, method=self.method,
            anchor_block=self.anchor_block, anchor_index=anchor_index, valid=valid,
        )

    def get_config(self):
        config = super().get_config()
        config["method"] = self.method
        config["anchor_block"] = self.anchor_block
        return config
