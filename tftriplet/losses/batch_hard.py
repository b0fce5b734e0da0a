"""Batch-hard: each anchor's hardest positive against its hardest negative (Hermans et al.).

One positive and one negative per anchor are picked out of the anchor's row of the
distance matrix (`tftriplet.mining`), so memory is `O(B^2)`; mining only some anchors
(`cross_replica`: one replica's `b` anchors against the global batch) is `O(b B)`.
"""

from __future__ import annotations

import keras
from keras import ops

from tftriplet.config import PACKAGE
from tftriplet.distances import resolve_distance
from tftriplet.inputs import standardize_inputs
from tftriplet.losses.base import TripletLoss
from tftriplet.margins import check_margin, masked_terms
from tftriplet.mining import anchor_rows, hardest_negative_distance, hardest_positive_distance
from tftriplet.statistics import statistics, sum_parts


def batch_hard_terms(labels, embeddings, margin, distance, soft, anchor_index=None,
                     valid=None):
    """Per-anchor `tftriplet.margins.MaskedTerms` `(A,)` of the anchors `anchor_index`
    (int32 `(A,)`; None: all `B`) mined against the batch's `valid` columns (bool `(B,)`;
    None: all)."""
    rows = anchor_rows(labels, embeddings, distance, anchor_index, valid)
    diff = hardest_positive_distance(rows) - hardest_negative_distance(rows)
    has_positive = ops.any(rows.positive, axis=1)
    has_negative = ops.greater(rows.num_negatives, 0)
    return masked_terms(diff, ops.logical_and(has_positive, has_negative), margin, soft)


def batch_hard_triplet_statistics(
    labels, embeddings, margin=0.2, squared=False, distance=None, soft=False
):
    """Like `batch_hard_triplet_loss`, with the counts.

    Returns:
        A dict of scalars: `loss`, `num_anchors` (anchors with a positive and a
        negative) and `num_positive` (those with `d_p - d_n + margin > 0`), the counts
        as floats in the loss's dtype.
    """
    labels, embeddings = standardize_inputs(labels, embeddings)
    distance = resolve_distance(distance, squared)
    parts = batch_hard_terms(labels, embeddings, check_margin(margin), distance, soft)
    return statistics(sum_parts(parts), False, "num_anchors")


def batch_hard_triplet_loss(
    labels, embeddings, margin=0.2, squared=False, distance=None, soft=False
):
    """Batch-hard triplet loss: the hardest positive against the hardest negative.

    For each anchor `i` with at least one positive and one negative:

        d_p(i) = max_{j: y_j = y_i, j != i} d(i, j)      (hardest positive)
        d_n(i) = min_{k: y_k != y_i} d(i, k)             (hardest negative)
        l(i)   = max(d_p(i) - d_n(i) + margin, 0)        (soft: softplus(d_p(i) - d_n(i)))

    and the loss is the mean of `l(i)` over those anchors. Anchors lacking a positive or
    a negative are left out (not counted as zero); with none left the loss is 0.

    Args:
        labels: integer class ids, shape `(B,)` or `(B, 1)`.
        embeddings: float tensor `(B, D)`.
        margin: the margin `m` (unused when `soft`).
        squared: shorthand for `distance="squared_euclidean"`.
        distance: `"euclidean"` (default), `"squared_euclidean"` or `"cosine"`.
        soft: `softplus(d_p - d_n)` instead of the hinge.

    Returns:
        The scalar loss.

    Example:
        ```python
        loss = batch_hard_triplet_loss([0, 0, 1, 1], [[0.0], [0.5], [1.0], [2.0]])
        ```

    Reference:
        Hermans, Beyer, Leibe. "In Defense of the Triplet Loss for Person
        Re-Identification", 2017. https://arxiv.org/abs/1703.07737
    """
    stats = batch_hard_triplet_statistics(labels, embeddings, margin, squared, distance, soft)
    return stats["loss"]


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchHardTripletLoss(TripletLoss):
    """Batch-hard triplet loss as a Keras loss.

    Per anchor with a positive and a negative, with the hardest positive distance `d_p` and
    the hardest negative distance `d_n`:

        l(i) = max(d_p(i) - d_n(i) + m, 0)        (soft=True: softplus(d_p(i) - d_n(i)))

    and the loss is the mean over those anchors. See `batch_hard_triplet_loss`.

    Args:
        margin: the margin `m` (default 0.2; unused when `soft`).
        soft: the soft margin instead of the hinge.
        cross_replica: under `tf.distribute`, each replica mines its anchors against the
            global batch (`tftriplet.distributed`).
        distance: `"euclidean"` (default), `"squared_euclidean"` or `"cosine"`.
        squared: shorthand for `distance="squared_euclidean"`.
        memory_size: with `N > 0`, each anchor's hardest positive and negative are sought
            among the `N` most recent earlier samples too, a cross-batch memory
            (docs/memory.md, `tftriplet.attach_memory`); 0 (default): none.
        memory_warmup: steps mined alone before the memory is used (default 0).
        name: the loss name.
        reduction: accepted for Keras compatibility; the loss is one scalar per batch.
        dtype: the dtype of the returned loss (computed in float32 at least).

    `y_true`: integer class ids `(B,)` or `(B, 1)`; `y_pred`: embeddings `(B, D)`.

    Example:
        ```python
        model.compile(optimizer="adam", loss=tftriplet.BatchHardTripletLoss(soft=True))
        ```

    Reference:
        Hermans et al., "In Defense of the Triplet Loss for Person Re-Identification",
        2017, https://arxiv.org/abs/1703.07737 ;
        Wang et al., "Cross-Batch Memory for Embedding Learning", CVPR 2020,
        https://arxiv.org/abs/1912.06798 (`memory_size`)
    """

    strategy = "batch_hard"
    count_name = "num_anchors"
    supports_soft = True

    def sums(self, labels, embeddings, anchor_index=None, valid=None):
        return sum_parts(batch_hard_terms(
            labels, embeddings, self.margin, self.distance, self.soft, anchor_index, valid
        ))
