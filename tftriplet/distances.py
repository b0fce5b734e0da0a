"""Pairwise distances between embeddings, safe to differentiate at zero distance."""

from __future__ import annotations

from keras import ops


def pairwise_squared_distances(embeddings):
    """Squared Euclidean distances ``||e_i - e_j||^2`` as a ``(B, B)`` tensor.

    Uses ``|a|^2 - 2 a.b + |b|^2`` (one matrix product, O(B^2) memory), clamps the rounding
    error below zero, and sets the diagonal to exactly 0.
    """
    dot = ops.matmul(embeddings, ops.transpose(embeddings))
    sq_norm = ops.diagonal(dot)
    sq = ops.expand_dims(sq_norm, 1) - 2.0 * dot + ops.expand_dims(sq_norm, 0)
    sq = ops.maximum(sq, 0.0)
    off_diagonal = 1.0 - ops.eye(ops.shape(embeddings)[0], dtype=sq.dtype)
    return sq * off_diagonal


def pairwise_distances(embeddings, squared=False):
    """Euclidean (or squared Euclidean) distances between all rows of ``embeddings``.

    The gradient of ``sqrt`` is infinite at 0; where a distance is exactly 0 (the diagonal,
    duplicate or collapsed embeddings) its gradient is taken as 0 instead of NaN.

    Args:
        embeddings: float tensor of shape ``(B, D)``.
        squared: return squared distances.

    Returns:
        A ``(B, B)`` tensor with a zero diagonal.
    """
    embeddings = ops.convert_to_tensor(embeddings)
    sq = pairwise_squared_distances(embeddings)
    if squared:
        return sq
    zero = ops.cast(ops.equal(sq, 0.0), sq.dtype)
    # sqrt(sq + zero) is 1 where sq == 0, so its gradient is finite; the product zeroes it.
    return ops.sqrt(sq + zero) * (1.0 - zero)
