"""The three distances: their values between any rows, and their analytic gradients.

One object per distance owns everything the losses, the mining and the metrics ask of it
(as pytorch-metric-learning's `distances` do): how embeddings are prepared (cosine
normalises them), the values between a block of rows and all points, the differentiable
matrix for autodiff, and the chain rule from per-pair weights back to the embeddings.
Every distance is 0 for a point and itself, and "smaller is closer" for all three.

Squared Euclidean distances are expanded as `|a|^2 - 2 a.b + |b|^2` (one matrix product,
`O(A B)` memory), clamped at 0. When the rows are the whole batch the squared norms are
the diagonal of the same product, so identical embeddings are exactly 0 apart.
"""

from __future__ import annotations

from typing import NamedTuple

from keras import ops

from tftriplet.backend_ops import (
    divide_or_zero,
    gpu_comparable,
    matmul_t,
    squared_from_product,
)

#: The distance names every loss and metric accepts.
DISTANCES = ("euclidean", "squared_euclidean", "cosine")


def resolve_distance(distance=None, squared=False):
    """The distance name from the `distance` argument and the `squared` shorthand.

    `distance=None` means `"squared_euclidean"` if `squared` else `"euclidean"`.
    `squared=True` with any distance other than `"squared_euclidean"` is a contradiction
    and raises. This is the one place where `squared` is read: past the public signatures
    only the distance travels.

    Raises:
        ValueError: on an unknown name or a conflicting combination.
    """
    squared = bool(squared)
    if distance is None:
        return "squared_euclidean" if squared else "euclidean"
    if isinstance(distance, Distance):
        distance = distance.name
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}; got {distance!r}.")
    if squared and distance != "squared_euclidean":
        raise ValueError(
            f"squared=True conflicts with distance={distance!r}: squared=True means "
            "distance='squared_euclidean'. Pass only distance=... (or squared=True alone)."
        )
    return distance


def get_distance(distance):
    """The `Distance` object for a name (or the object itself)."""
    if isinstance(distance, Distance):
        return distance
    return _BY_NAME[resolve_distance(distance)]


class Points(NamedTuple):
    """Embeddings prepared for a distance.

    Attributes:
        values: `(B, D)`: the embeddings, L2-normalised for the cosine distance.
        sq_norm: `(B,)` squared norms of `values` (Euclidean distances only).
        inv_norm: `(B, 1)` inverse norms of the embeddings, 0 for a zero row (cosine only).
    """

    values: object
    sq_norm: object = None
    inv_norm: object = None

    def take(self, index):
        """The prepared rows `index` (int32 `(A,)`)."""
        return Points(*(None if x is None else ops.take(x, index, axis=0) for x in self))


def _inverse_norm(embeddings):
    """`(B, 1)` inverse Euclidean norms of the rows, exactly 0 (with zero gradient) for an
    all-zero row.

    `x / max(|x|, eps)` (the usual guard) gives a gradient of `1 / eps` at a zero row;
    here the scale of a zero row is exactly 0 and nothing flows through it.
    """
    sq_norm = ops.sum(ops.square(embeddings), axis=1, keepdims=True)
    nonzero = ops.greater(sq_norm, 0.0)
    return ops.where(nonzero, ops.rsqrt(ops.where(nonzero, sq_norm, 1.0)), 0.0)


def _safe_sqrt(sq):
    """`sqrt` whose gradient at exactly 0 is 0 instead of inf (and NaN after chaining)."""
    zero = ops.cast(ops.equal(sq, 0.0), sq.dtype)
    # sqrt(sq + zero) is 1 where sq == 0, so its gradient is finite; the product zeroes it.
    return ops.sqrt(sq + zero) * (1.0 - zero)


def _not_self(anchor_index, batch_size):
    """`(A, B)` bool: column `j` is not the anchor's own row (compared in int64 under
    TensorFlow, so that the comparison runs on a GPU: `backend_ops.gpu_comparable`)."""
    columns = gpu_comparable(ops.arange(batch_size, dtype="int32"))
    return ops.not_equal(ops.expand_dims(gpu_comparable(anchor_index), 1),
                         ops.expand_dims(columns, 0))


class Distance:
    """A distance between embeddings: values, differentiable matrices, analytic gradient.

    The analytic gradient follows from per-pair weights `W` (the derivative of a sum of
    terms with respect to each distance `d_ij`): with `G = slopes(W, d)`,

        d/dp_i sum_ij W_ij d_ij = norm_term * rowsum(G)_i p_i - (G p)_i   (rows)
                                + norm_term * colsum(G)_i p_i - (G^T p)_i (columns)

    on the prepared points `p`, then `to_embeddings` (the normalisation's chain rule).
    """

    name = None
    #: Whether the gradient has the `rowsum(G) p` terms (the Euclidean distances).
    norm_term = True

    def prepare(self, embeddings):
        """`Points` for `embeddings` `(B, D)` (differentiable if the embeddings are)."""
        return Points(embeddings, sq_norm=ops.sum(ops.square(embeddings), axis=1))

    def between(self, points, rows, whole=False):
        """`(A, B)` distances from the prepared `rows` to every prepared point.

        Args:
            points: `Points` of the batch.
            rows: `Points` of the anchors (some rows of `points`).
            whole: the rows are `points` itself, in order: the squared norms are then
                the diagonal of the product, so identical rows are exactly 0 apart.

        Returns:
            The distances; an anchor's distance to its own column is left as computed.
        """
        return self.finish(self.product(points, rows), points, rows, whole)

    def product(self, points, rows):
        """The `(A, B)` matrix product of `rows` and `points` that `between` starts from:
        its one `A x B x D` step."""
        raise NotImplementedError

    def finish(self, product, points, rows, whole=False):
        """`between` from its `product`, elementwise (a compiler can fuse it with what
        follows). Arguments as `between`."""
        raise NotImplementedError

    def slopes(self, weights, distances, overwrite=False):
        """`G`: the per-pair coefficients of the gradient of `sum W * d` (see the class);
        `overwrite`: `weights` is the caller's fresh tensor, which may hold `G`."""
        raise NotImplementedError

    def to_embeddings(self, gradient, points):
        """The gradient with respect to the embeddings from that w.r.t. the points."""
        return gradient

    def matrix(self, embeddings, anchor_index=None):
        """Differentiable distances, 0 between a point and itself.

        Args:
            embeddings: float `(B, D)`.
            anchor_index: int32 `(A,)` rows, or None for all (the `(B, B)` matrix).

        Returns:
            `(A, B)` (or `(B, B)`) distances whose gradient is finite everywhere: where a
            Euclidean distance is exactly 0 its gradient is taken as 0.
        """
        embeddings = ops.convert_to_tensor(embeddings)
        points = self.prepare(embeddings)
        batch_size = ops.shape(embeddings)[0]
        if anchor_index is None:
            anchor_index = ops.arange(batch_size, dtype="int32")
            d = self.between(points, points, whole=True)
        else:
            anchor_index = ops.convert_to_tensor(anchor_index, "int32")
            d = self.between(points, points.take(anchor_index))
        return d * ops.cast(_not_self(anchor_index, batch_size), d.dtype)


class SquaredEuclidean(Distance):
    """`|e_i - e_j|^2`."""

    name = "squared_euclidean"
    #: `finish` takes the square root (the Euclidean distance).
    root = False

    def product(self, points, rows):
        return matmul_t(-2.0 * rows.values, points.values, transpose_b=True)

    def finish(self, product, points, rows, whole=False):
        minus_two_dot = product
        if whole:  # -2 |e|^2 scaled back exactly (a power of two)
            sq_norm = -0.5 * ops.diagonal(minus_two_dot)
            row_norm = col_norm = sq_norm
        else:
            row_norm, col_norm = rows.sq_norm, points.sq_norm
        return squared_from_product(minus_two_dot, row_norm, col_norm, root=self.root)

    def slopes(self, weights, distances, overwrite=False):
        return 2.0 * weights


class Euclidean(SquaredEuclidean):
    """`|e_i - e_j|`."""

    name = "euclidean"
    root = True

    def matrix(self, embeddings, anchor_index=None):
        return _safe_sqrt(SQUARED_EUCLIDEAN.matrix(embeddings, anchor_index))

    def slopes(self, weights, distances, overwrite=False):
        # the subgradient 0 at d = 0
        return divide_or_zero(weights, distances, overwrite=overwrite)


class Cosine(Distance):
    """`1 - e_i . e_j / (|e_i| |e_j|)` in `[0, 2]`; a zero row is at 1 from every other."""

    name = "cosine"
    norm_term = False

    def prepare(self, embeddings):
        inv_norm = _inverse_norm(embeddings)
        return Points(embeddings * inv_norm, inv_norm=inv_norm)

    def product(self, points, rows):
        return matmul_t(rows.values, points.values, transpose_b=True)

    def finish(self, product, points, rows, whole=False):
        return ops.clip(1.0 - product, 0.0, 2.0)

    def slopes(self, weights, distances, overwrite=False):
        return weights

    def to_embeddings(self, gradient, points):
        # through n = e / |e|: (g - (g . n) n) / |e|
        radial = ops.sum(gradient * points.values, axis=1, keepdims=True)
        return (gradient - radial * points.values) * points.inv_norm


SQUARED_EUCLIDEAN = SquaredEuclidean()
_BY_NAME = {d.name: d for d in (Euclidean(), SQUARED_EUCLIDEAN, Cosine())}


def pairwise_distances(embeddings, squared=False, distance=None):
    """Distances between all rows of `embeddings`, by name.

    `"euclidean"` (the default) `|e_i - e_j|`, `"squared_euclidean"` `|e_i - e_j|^2` or
    `"cosine"` `1 - e_i.e_j / (|e_i| |e_j|)` (a zero row at distance 1 from every other).
    The gradient of `sqrt` is infinite at 0; where a Euclidean distance is exactly 0 (the
    diagonal, duplicate or collapsed embeddings) its gradient is taken as 0 instead of NaN.

    Args:
        embeddings: float tensor of shape `(B, D)`.
        squared: shorthand for `distance="squared_euclidean"`.
        distance: one of `DISTANCES`; `None` follows `squared`.

    Returns:
        A `(B, B)` tensor with a zero diagonal, in the dtype of `embeddings`.

    Example:
        ```python
        d = pairwise_distances([[0.0, 0.0], [3.0, 4.0]])   # [[0, 5], [5, 0]]
        ```

    Reference:
        Schroff et al., "FaceNet", CVPR 2015, https://arxiv.org/abs/1503.03832 (section 3).
    """
    return get_distance(resolve_distance(distance, squared)).matrix(embeddings)


def anchor_distances(embeddings, anchor_index, squared=False, distance=None):
    """Rows `anchor_index` of `pairwise_distances`, without the `(B, B)` matrix.

    `out[a, j]` is the distance from the anchor `anchor_index[a]` to row `j`: one
    `(A, D) x (D, B)` product, `O(A B)` memory, with the same rules as
    `pairwise_distances` (0 at the anchor's own column, a zero gradient where a Euclidean
    distance is exactly 0). Used to mine some anchors (one replica's) against a batch.

    Args:
        embeddings: float tensor of shape `(B, D)`.
        anchor_index: int32 indices `(A,)` into the rows of `embeddings`.
        squared: shorthand for `distance="squared_euclidean"`.
        distance: one of `DISTANCES`; `None` follows `squared`.

    Returns:
        An `(A, B)` tensor, 0 at `[a, anchor_index[a]]`.

    Example:
        ```python
        anchor_distances([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]], [1])  # [[5., 0., 4.24]]
        ```
    """
    return get_distance(resolve_distance(distance, squared)).matrix(embeddings, anchor_index)
