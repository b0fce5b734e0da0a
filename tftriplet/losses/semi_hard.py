"""Semi-hard: per positive pair, the closest negative farther than the positive (FaceNet).

The negative of each anchor-positive pair is found by a binary search in the anchor's
sorted negative distances (`tftriplet.mining`), so memory is `O(B^2)`, never the
`(B, B, B)` comparison tile; mining only some anchors (`cross_replica`: one replica's
`b` anchors against the global batch) is `O(b * B)`.
"""

from __future__ import annotations

import keras
from keras import ops

from tftriplet.config import PACKAGE
from tftriplet.distances import resolve_distance
from tftriplet.inputs import standardize_inputs
from tftriplet.losses.base import TripletLoss
from tftriplet.margins import check_margin, masked_terms
from tftriplet.mining import anchor_rows, semi_hard_negative_distance
from tftriplet.statistics import statistics, sum_parts


def semi_hard_terms(labels, embeddings, margin, distance, anchor_index=None, valid=None):
    """Per anchor-positive pair `tftriplet.margins.MaskedTerms` `(A, B)` of the anchors
    `anchor_index` (int32 `(A,)`; None: all `B`) mined against the batch's `valid`
    columns (bool `(B,)`; None: all)."""
    rows = anchor_rows(labels, embeddings, distance, anchor_index, valid)
    diff = rows.distances - semi_hard_negative_distance(rows)
    has_negative = ops.expand_dims(ops.greater(rows.num_negatives, 0), 1)
    return masked_terms(diff, ops.logical_and(rows.positive, has_negative), margin, False)


def semi_hard_triplet_statistics(labels, embeddings, margin=0.2, squared=False, distance=None):
    """Like `semi_hard_triplet_loss`, with the counts.

    Returns:
        A dict of scalars: `loss`, `num_pairs` (anchor-positive pairs whose anchor has
        a negative) and `num_positive` (those with a positive hinge), the counts as
        floats in the loss's dtype.
    """
    labels, embeddings = standardize_inputs(labels, embeddings)
    distance = resolve_distance(distance, squared)
    parts = semi_hard_terms(labels, embeddings, check_margin(margin), distance)
    return statistics(sum_parts(parts), False, "num_pairs")


def semi_hard_triplet_loss(labels, embeddings, margin=0.2, squared=False, distance=None):
    """Semi-hard triplet loss (FaceNet), at `O(B^2)` memory.

    For each anchor-positive pair `(i, j)` (`j != i`, `y_j = y_i`) whose anchor has at
    least one negative:

        d_n(i, j) = min {d(i, k) : y_k != y_i, d(i, k) > d(i, j)}   if that set is non-empty
                  = max {d(i, k) : y_k != y_i}                      otherwise
        l(i, j)   = max(d(i, j) - d_n(i, j) + margin, 0)

    and the loss is the mean of `l(i, j)` over those pairs (0 if there are none).

    Args:
        labels: integer class ids, shape `(B,)` or `(B, 1)`.
        embeddings: float tensor `(B, D)`.
        margin: the margin `m`.
        squared: shorthand for `distance="squared_euclidean"`.
        distance: `"euclidean"` (default), `"squared_euclidean"` or `"cosine"`.

    Returns:
        The scalar loss.

    Example:
        ```python
        loss = semi_hard_triplet_loss([0, 0, 1, 1], [[0.0], [0.5], [1.0], [2.0]])
        ```

    Reference:
        Schroff, Kalenichenko, Philbin. "FaceNet: A Unified Embedding for Face Recognition
        and Clustering", CVPR 2015, section 3.2. https://arxiv.org/abs/1503.03832
    """
    return semi_hard_triplet_statistics(labels, embeddings, margin, squared, distance)["loss"]


@keras.saving.register_keras_serializable(package=PACKAGE)
class SemiHardTripletLoss(TripletLoss):
    """Semi-hard triplet loss (FaceNet) as a Keras loss, at `O(B^2)` memory.

    Per anchor-positive pair `(i, j)` whose anchor has a negative, with `d_n(i, j)` the
    closest negative farther than the positive (else the farthest negative):

        l(i, j) = max(d(i, j) - d_n(i, j) + m, 0)

    and the loss is the mean over those pairs. See `semi_hard_triplet_loss`. It has no
    soft-margin form.

    Args:
        margin: the margin `m` (default 0.2).
        cross_replica: under `tf.distribute`, each replica mines its anchors against the
            global batch (`tftriplet.distributed`).
        distance: `"euclidean"` (default), `"squared_euclidean"` or `"cosine"`.
        squared: shorthand for `distance="squared_euclidean"`.
        memory_size: with `N > 0`, the pairs' positives and semi-hard negatives come from
            the batch and its `N` most recent predecessors (docs/memory.md,
            `tftriplet.attach_memory`); 0, the default: from the batch alone.
        memory_warmup: how many first steps ignore the memory (default 0).
        name: the loss name.
        reduction: accepted for Keras compatibility; the loss is one scalar per batch.
        dtype: the dtype of the returned loss (computed in float32 at least).

    `y_true`: integer class ids `(B,)` or `(B, 1)`; `y_pred`: embeddings `(B, D)`.

    Example:
        ```python
        model.compile(optimizer="adam", loss=tftriplet.SemiHardTripletLoss(margin=0.5))
        ```

    Reference:
        Schroff et al., "FaceNet", CVPR 2015, https://arxiv.org/abs/1503.03832 ;
        Wang et al., "Cross-Batch Memory for Embedding Learning", CVPR 2020,
        https://arxiv.org/abs/1912.06798 (`memory_size`)
    """

    strategy = "semi_hard"
    count_name = "num_pairs"

    def sums(self, labels, embeddings, anchor_index=None, valid=None):
        return sum_parts(semi_hard_terms(
            labels, embeddings, self.margin, self.distance, anchor_index, valid
        ))
