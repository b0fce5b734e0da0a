"""Batch-hard and semi-hard triplet losses, functional forms and Keras ``Loss`` subclasses.

Both pick one negative per anchor (or anchor-positive pair) out of the ``(B, B)`` distance
matrix (see :mod:`tftriplet.mining`), so they run at ``O(B^2)`` memory.
"""

from __future__ import annotations

import keras
from keras import ops

from tftriplet.distances import pairwise_distances, resolve_distance
from tftriplet.inputs import standardize_inputs
from tftriplet.losses import PACKAGE, TripletLoss, _batch_all_dense
from tftriplet.mining import (
    AnchorRows,
    hardest_negative_distance,
    hardest_positive_distance,
    semi_hard_negative_distance,
    softplus,
)

#: The strategy names, as the conformance fixtures spell them.
STRATEGIES = ("batch_all", "batch_hard", "semi_hard")


def _per_anchor_terms(diff, mask, margin, soft):
    """The terms of ``diff = d_ap - d_an`` where ``mask``, with a leading anchor axis.

    The term is ``max(diff + margin, 0)``, or ``softplus(diff)`` if ``soft``; 0 where the
    mask is False. Returns ``(terms, counted, positive)``, the last two as 0/1 floats.
    """
    terms = softplus(diff) if soft else ops.maximum(diff + margin, 0.0)
    terms = ops.where(mask, terms, ops.zeros_like(terms))
    positive = ops.logical_and(mask, ops.greater(diff + margin, 0.0))
    return terms, ops.cast(mask, diff.dtype), ops.cast(positive, diff.dtype)


def _batch_hard_terms(labels, embeddings, margin, distance, soft):
    """Per-anchor batch-hard terms ``(B,)`` (see :func:`_per_anchor_terms`)."""
    rows = AnchorRows(labels, pairwise_distances(embeddings, distance=distance))
    diff = hardest_positive_distance(rows) - hardest_negative_distance(rows)
    has_positive = ops.any(rows.positive, axis=1)
    has_negative = ops.greater(rows.num_negatives, 0)
    return _per_anchor_terms(diff, ops.logical_and(has_positive, has_negative), margin, soft)


def _semi_hard_terms(labels, embeddings, margin, distance):
    """Per anchor-positive pair semi-hard terms ``(B, B)`` (see :func:`_per_anchor_terms`)."""
    rows = AnchorRows(labels, pairwise_distances(embeddings, distance=distance))
    diff = rows.distances - semi_hard_negative_distance(rows)
    has_negative = ops.expand_dims(ops.greater(rows.num_negatives, 0), 1)
    return _per_anchor_terms(diff, ops.logical_and(rows.positive, has_negative), margin, False)


def _mean(parts, count_name):
    """``loss`` (0, not NaN, when nothing is counted) and the counts, from per-anchor parts."""
    terms, counted, positive = (ops.sum(p) for p in parts)
    return {
        "loss": terms / ops.maximum(counted, 1.0),
        count_name: ops.cast(counted, "float32"),
        "num_positive": ops.cast(positive, "float32"),
    }


def _anchor_share(parts, anchor_index):
    """``(sum of terms, count)`` over the anchors ``anchor_index`` (for ``cross_replica``)."""
    terms, counted, _ = (ops.take(p, anchor_index, axis=0) for p in parts)
    return ops.sum(terms), ops.sum(counted)


def _batch_hard(labels, embeddings, margin, distance, soft):
    parts = _batch_hard_terms(labels, embeddings, margin, distance, soft)
    return _mean(parts, "num_anchors")


def _semi_hard(labels, embeddings, margin, distance):
    return _mean(_semi_hard_terms(labels, embeddings, margin, distance), "num_pairs")


def batch_hard_triplet_statistics(
    labels, embeddings, margin=0.2, squared=False, distance=None, soft=False
):
    """Like :func:`batch_hard_triplet_loss`, as a dict with the counts.

    Keys: ``loss``, ``num_anchors`` (anchors with a positive and a negative) and
    ``num_positive`` (those whose ``d_p - d_n + margin > 0``), as the float64 reference
    ``tftriplet.reference.batch_hard`` names them.
    """
    labels, embeddings = standardize_inputs(labels, embeddings)
    return _batch_hard(labels, embeddings, margin, resolve_distance(distance, squared), soft)


def semi_hard_triplet_statistics(labels, embeddings, margin=0.2, squared=False, distance=None):
    """Like :func:`semi_hard_triplet_loss`, as a dict with the counts.

    Keys: ``loss``, ``num_pairs`` (anchor-positive pairs whose anchor has a negative) and
    ``num_positive`` (those with a positive hinge), as ``tftriplet.reference.semi_hard``.
    """
    labels, embeddings = standardize_inputs(labels, embeddings)
    return _semi_hard(labels, embeddings, margin, resolve_distance(distance, squared))


def batch_hard_triplet_loss(
    labels, embeddings, margin=0.2, squared=False, distance=None, soft=False
):
    """Batch-hard triplet loss (Hermans et al. 2017).

    For each anchor i that has at least one positive and at least one negative::

        d_p(i) = max_{j: y_j = y_i, j != i} d(i, j)      (hardest positive)
        d_n(i) = min_{k: y_k != y_i} d(i, k)             (hardest negative)
        l(i)   = max(d_p(i) - d_n(i) + margin, 0)        (soft: softplus(d_p(i) - d_n(i)))

    and the loss is the mean of ``l(i)`` over those anchors. Anchors lacking a positive or a
    negative are excluded (not counted as zero); with no such anchor the loss is 0.

    Args:
        labels: integer class ids, shape ``(B,)`` or ``(B, 1)``.
        embeddings: float tensor ``(B, D)``.
        margin: the margin ``m`` (unused when ``soft``).
        squared: the core's flag, same as ``distance="squared_euclidean"``.
        distance: ``"euclidean"`` (default), ``"squared_euclidean"`` or ``"cosine"``.
        soft: replace ``max(x + m, 0)`` by ``softplus(x)``.

    Returns:
        The scalar loss.

    Reference:
        Hermans, Beyer, Leibe. "In Defense of the Triplet Loss for Person
        Re-Identification", 2017. https://arxiv.org/abs/1703.07737
    """
    return batch_hard_triplet_statistics(labels, embeddings, margin, squared, distance, soft)[
        "loss"
    ]


def semi_hard_triplet_loss(labels, embeddings, margin=0.2, squared=False, distance=None):
    """Semi-hard triplet loss (FaceNet), at ``O(B^2)`` memory.

    For each anchor-positive pair ``(i, j)`` (``j != i``, ``y_j = y_i``) whose anchor has at
    least one negative::

        d_n(i, j) = min {d(i, k) : y_k != y_i, d(i, k) > d(i, j)}   if that set is non-empty
                  = max {d(i, k) : y_k != y_i}                      otherwise
        l(i, j)   = max(d(i, j) - d_n(i, j) + margin, 0)

    and the loss is the mean of ``l(i, j)`` over those pairs (0 if there are none).

    Args:
        labels: integer class ids, shape ``(B,)`` or ``(B, 1)``.
        embeddings: float tensor ``(B, D)``.
        margin: the margin ``m``.
        squared: the core's flag, same as ``distance="squared_euclidean"``.
        distance: ``"euclidean"`` (default), ``"squared_euclidean"`` or ``"cosine"``.

    Returns:
        The scalar loss.

    Reference:
        Schroff, Kalenichenko, Philbin. "FaceNet: A Unified Embedding for Face Recognition
        and Clustering", CVPR 2015, section 3.2. https://arxiv.org/abs/1503.03832
    """
    return semi_hard_triplet_statistics(labels, embeddings, margin, squared, distance)["loss"]


def triplet_loss(
    labels, embeddings, name="batch_all", margin=0.2, distance="euclidean", soft=False
):
    """Any strategy by name, as a conformance fixture's ``loss`` object spells it.

    ``triplet_loss(labels, embeddings, **fixture["loss"])`` with ``name`` one of
    :data:`STRATEGIES`. Returns the scalar loss.
    """
    if name not in STRATEGIES:
        raise ValueError(f"name must be one of {STRATEGIES}; got {name!r}.")
    if name == "semi_hard" and soft:
        raise ValueError("semi_hard has no soft-margin form; got soft=True.")
    labels, embeddings = standardize_inputs(labels, embeddings)
    distance = resolve_distance(distance)
    if name == "batch_all":
        return _batch_all_dense(labels, embeddings, margin, distance, soft)["loss"]
    if name == "batch_hard":
        return _batch_hard(labels, embeddings, margin, distance, soft)["loss"]
    return _semi_hard(labels, embeddings, margin, distance)["loss"]


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchHardTripletLoss(TripletLoss):
    """Batch-hard triplet loss (Hermans et al. 2017) as a Keras loss.

    Per anchor with a positive and a negative: ``max(hardest d_ap - hardest d_an + m, 0)``
    (or ``softplus(hardest d_ap - hardest d_an)`` with ``soft=True``); the mean over those
    anchors. See :func:`batch_hard_triplet_loss`.

    Args:
        margin: the margin ``m`` (default 0.2; unused when ``soft``).
        squared: the core's flag, same as ``distance="squared_euclidean"``.
        distance: ``"euclidean"`` (default), ``"squared_euclidean"`` or ``"cosine"``.
        soft: soft margin.
        name, reduction, dtype, cross_replica: as for :class:`tftriplet.BatchAllTripletLoss`
            (with ``cross_replica`` each replica mines its anchors against the global batch).

    Example:
        >>> model.compile(optimizer="adam", loss=tftriplet.BatchHardTripletLoss(soft=True))

    Reference:
        Hermans et al., "In Defense of the Triplet Loss for Person Re-Identification",
        2017, https://arxiv.org/abs/1703.07737
    """

    supports_soft = True

    def compute(self, labels, embeddings):
        return _batch_hard(labels, embeddings, self.margin, self.distance, self.soft)["loss"]

    def anchor_terms(self, labels, embeddings, anchor_index):
        parts = _batch_hard_terms(labels, embeddings, self.margin, self.distance, self.soft)
        return _anchor_share(parts, anchor_index)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SemiHardTripletLoss(TripletLoss):
    """Semi-hard triplet loss (FaceNet) as a Keras loss, at ``O(B^2)`` memory.

    Per anchor-positive pair whose anchor has a negative: the closest negative farther than
    the positive (else the farthest negative), ``max(d_ap - d_an + m, 0)``; the mean over
    those pairs. See :func:`semi_hard_triplet_loss`.

    Args:
        margin: the margin ``m`` (default 0.2).
        squared: the core's flag, same as ``distance="squared_euclidean"``.
        distance: ``"euclidean"`` (default), ``"squared_euclidean"`` or ``"cosine"``.
        name, reduction, dtype, cross_replica: as for :class:`tftriplet.BatchAllTripletLoss`
            (with ``cross_replica`` each replica mines its anchors against the global batch).

    Example:
        >>> model.compile(optimizer="adam", loss=tftriplet.SemiHardTripletLoss(margin=0.5))

    Reference:
        Schroff et al., "FaceNet", CVPR 2015, https://arxiv.org/abs/1503.03832
    """

    def compute(self, labels, embeddings):
        return _semi_hard(labels, embeddings, self.margin, self.distance)["loss"]

    def anchor_terms(self, labels, embeddings, anchor_index):
        parts = _semi_hard_terms(labels, embeddings, self.margin, self.distance)
        return _anchor_share(parts, anchor_index)
