"""Batch-all on ``(A, B, B)`` tensors: every valid triple's term, as the definition reads.

For anchors ``i`` (all ``B`` of them, or a subset of ``A``), positives ``j`` and negatives
``k``, the term of a valid triple is ``max(d_ij - d_ik + m, 0)`` (``softplus(d_ij - d_ik)``
with the soft margin). The masks are folded into the ``(A, B)`` rows: ``d_ij + m`` is
``-inf`` where ``j`` is not a positive and ``d_ik`` is ``+inf`` where ``k`` is not a
negative, so an invalid triple's difference is ``-inf``, its term 0 and its gradient 0, and
no ``(B, B, B)`` mask or ``where`` is built. ``(d_ij + m) - d_ik > 0`` exactly when
``d_ik < fl(d_ij + m)``, the comparison :mod:`tftriplet.losses.batch_all_sorted` counts, so
on the same distances the two count the same triples.

Memory is ``O(A B^2)``: this is the form for small batches (and the soft margin).
"""

from __future__ import annotations

from keras import ops

from tftriplet.distances import pairwise_distances
from tftriplet.losses.base import normalize
from tftriplet.masks import anchor_negative_mask, anchor_positive_mask
from tftriplet.mining import softplus


def triplet_terms(distances, positive, negative, margin, soft):
    """Per-triple terms ``(A, B, B)`` and the number of positive hinges among them.

    Args:
        distances: ``(A, B)`` rows of the distance matrix, one per anchor.
        positive: bool ``(A, B)``, the anchors' positives.
        negative: bool ``(A, B)``, the anchors' negatives.
        margin: the margin ``m``.
        soft: soft margin instead of the hinge.

    Returns:
        ``(terms, num_positive)``: ``terms[a, j, k]`` is the term of the triple (anchor
        ``a``, ``j``, ``k``), 0 where it is not valid; ``num_positive`` counts the valid
        triples with ``d_ij - d_ik + m > 0`` (the ``fraction_positive`` statistic).
    """
    shifted = distances if soft else distances + margin
    anchor_positive = ops.where(positive, shifted, float("-inf"))
    anchor_negative = ops.where(negative, distances, float("inf"))
    diff = ops.expand_dims(anchor_positive, 2) - ops.expand_dims(anchor_negative, 1)
    if soft:
        return softplus(diff), count_positive(ops.relu(diff + margin))
    # relu, not maximum(hinge, 0): its gradient at a hinge of exactly 0 is 0 on every
    # backend (a tie is not a positive triple), where maximum passes 1 (TF) or 1/2.
    hinge = ops.relu(diff)
    return hinge, count_positive(hinge)


def count_positive(hinge):
    """The number of strictly positive entries of a non-negative tensor, in its dtype."""
    return ops.sum(ops.sign(ops.stop_gradient(hinge)))


def num_valid_triples(positive, negative, dtype):
    """``sum_a |P_a| |N_a|`` from the ``(A, B)`` pair masks: no ``(A, B, B)`` pass."""
    num_pos = ops.sum(ops.cast(positive, dtype), axis=1)
    num_neg = ops.sum(ops.cast(negative, dtype), axis=1)
    return ops.sum(num_pos * num_neg)


def batch_all_dense(labels, embeddings, margin, distance, soft=False):
    """Batch-all statistics of a whole batch. Inputs standardized.

    Returns:
        A dict with ``loss``, ``fraction_positive``, ``num_positive`` and ``num_valid``.
        The hinge loss is divided by ``num_positive``, the soft one by ``num_valid``.
    """
    distances = pairwise_distances(embeddings, distance=distance)
    positive, negative = anchor_positive_mask(labels), anchor_negative_mask(labels)
    terms, num_positive = triplet_terms(distances, positive, negative, margin, soft)
    num_valid = num_valid_triples(positive, negative, distances.dtype)
    return {
        "loss": normalize(ops.sum(terms), num_valid if soft else num_positive),
        "fraction_positive": normalize(num_positive, num_valid),
        "num_positive": num_positive,
        "num_valid": num_valid,
    }
