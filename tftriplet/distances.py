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


#: The distance names every loss and metric accepts.
DISTANCES = ("euclidean", "squared_euclidean", "cosine")


def resolve_distance(distance=None, squared=False):
    """The distance name from the ``distance`` argument and the ``squared`` shorthand.

    ``distance=None`` means ``"squared_euclidean"`` if ``squared`` else ``"euclidean"``.
    ``squared=True`` with any distance other than ``"squared_euclidean"`` is a
    contradiction and raises.

    Raises:
        ValueError: on an unknown name or a conflicting combination.
    """
    squared = bool(squared)
    if distance is None:
        return "squared_euclidean" if squared else "euclidean"
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}; got {distance!r}.")
    if squared and distance != "squared_euclidean":
        raise ValueError(
            f"squared=True conflicts with distance={distance!r}: squared=True means "
            "distance='squared_euclidean'. Pass only distance=... (or squared=True alone)."
        )
    return distance


def _safe_sqrt(sq):
    """``sqrt`` whose gradient at exactly 0 is 0 instead of inf (and NaN after chaining)."""
    zero = ops.cast(ops.equal(sq, 0.0), sq.dtype)
    # sqrt(sq + zero) is 1 where sq == 0, so its gradient is finite; the product zeroes it.
    return ops.sqrt(sq + zero) * (1.0 - zero)


def l2_normalize(embeddings):
    """Rows divided by their Euclidean norm; an all-zero row stays zero, with zero gradient.

    ``x / max(|x|, eps)`` (the usual guard) gives a gradient of ``1 / eps`` at a zero row;
    here the scale of a zero row is exactly 0 and nothing flows through it.
    """
    sq_norm = ops.sum(ops.square(embeddings), axis=1, keepdims=True)
    nonzero = ops.greater(sq_norm, 0.0)
    inv_norm = ops.where(nonzero, ops.rsqrt(ops.where(nonzero, sq_norm, 1.0)), 0.0)
    return embeddings * inv_norm


def pairwise_cosine_distances(embeddings):
    """Cosine distances ``1 - cos(e_i, e_j)`` as a ``(B, B)`` tensor in ``[0, 2]``.

    Rows are L2-normalised inside; a zero row is at distance 1 from every other row (its
    cosine similarity is taken as 0), with a finite (zero) gradient. The diagonal is 0.
    """
    normalized = l2_normalize(embeddings)
    cos = ops.matmul(normalized, ops.transpose(normalized))
    dist = ops.clip(1.0 - cos, 0.0, 2.0)
    off_diagonal = 1.0 - ops.eye(ops.shape(embeddings)[0], dtype=dist.dtype)
    return dist * off_diagonal


def pairwise_distances(embeddings, squared=False, distance=None):
    """Distances between all rows of ``embeddings``, by name.

    ``"euclidean"`` (the default) ``|e_i - e_j|``, ``"squared_euclidean"`` ``|e_i - e_j|^2``
    or ``"cosine"`` ``1 - e_i.e_j / (|e_i| |e_j|)``. The gradient of ``sqrt`` is infinite at
    0; where a Euclidean distance is exactly 0 (the diagonal, duplicate or collapsed
    embeddings) its gradient is taken as 0 instead of NaN.

    Args:
        embeddings: float tensor of shape ``(B, D)``.
        squared: shorthand for ``distance="squared_euclidean"``.
        distance: one of :data:`DISTANCES`; ``None`` follows ``squared``.

    Returns:
        A ``(B, B)`` tensor with a zero diagonal, in the dtype of ``embeddings``.

    Example:
        >>> d = pairwise_distances([[0.0, 0.0], [3.0, 4.0]])   # [[0, 5], [5, 0]]

    Reference:
        Schroff et al., "FaceNet", CVPR 2015, https://arxiv.org/abs/1503.03832 (section 3).
    """
    distance = resolve_distance(distance, squared)
    embeddings = ops.convert_to_tensor(embeddings)
    if distance == "cosine":
        return pairwise_cosine_distances(embeddings)
    sq = pairwise_squared_distances(embeddings)
    if distance == "squared_euclidean":
        return sq
    return _safe_sqrt(sq)


def anchor_distances(embeddings, anchor_index, squared=False, distance=None):
    """Rows ``anchor_index`` of :func:`pairwise_distances`, without the ``(B, B)`` matrix.

    ``out[a, j]`` is the distance from the anchor ``anchor_index[a]`` to row ``j``: one
    ``(A, D) x (D, B)`` product, ``O(A * B)`` memory. The same rules as
    :func:`pairwise_distances`: squared Euclidean distances are ``|a|^2 - 2 a.e + |e|^2``
    clamped at 0, cosine distances are clipped to ``[0, 2]`` (a zero row at distance 1),
    an anchor's distance to its own row is exactly 0, and where a Euclidean distance is
    exactly 0 its gradient is 0. Used to mine some anchors (one replica's) against a batch.

    Args:
        embeddings: float tensor of shape ``(B, D)``.
        anchor_index: int32 indices ``(A,)`` into the rows of ``embeddings``.
        squared: the core's flag, same as ``distance="squared_euclidean"``.
        distance: one of :data:`DISTANCES`; ``None`` follows ``squared``.

    Returns:
        An ``(A, B)`` tensor, 0 at ``[a, anchor_index[a]]``.

    Example:
        >>> anchor_distances([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]], [1])  # [[5., 0., 4.24]]
    """
    distance = resolve_distance(distance, squared)
    embeddings = ops.convert_to_tensor(embeddings)
    anchor_index = ops.convert_to_tensor(anchor_index, "int32")
    columns = ops.arange(ops.shape(embeddings)[0], dtype="int32")
    not_self = ops.not_equal(ops.expand_dims(anchor_index, 1), ops.expand_dims(columns, 0))
    if distance == "cosine":
        normalized = l2_normalize(embeddings)
        anchors = ops.take(normalized, anchor_index, axis=0)
        dist = ops.clip(1.0 - ops.matmul(anchors, ops.transpose(normalized)), 0.0, 2.0)
        return dist * ops.cast(not_self, dist.dtype)
    sq_norm = ops.sum(ops.square(embeddings), axis=1)
    anchors = ops.take(embeddings, anchor_index, axis=0)
    dot = ops.matmul(anchors, ops.transpose(embeddings))
    sq = (
        ops.expand_dims(ops.take(sq_norm, anchor_index, axis=0), 1)
        - 2.0 * dot
        + ops.expand_dims(sq_norm, 0)
    )
    sq = ops.maximum(sq, 0.0) * ops.cast(not_self, dot.dtype)
    if distance == "squared_euclidean":
        return sq
    return _safe_sqrt(sq)
