"""Per-anchor selections of positives and negatives, at O(A * B) memory for A anchors.

Batch-hard and semi-hard mining pick, for each anchor (or anchor-positive pair), one
negative out of the anchor's row of the distance matrix (`(B, B)` for all anchors,
`(A, B)` for some, e.g. one replica's against the global batch); the difficulty metric
counts, for each anchor-positive pair, how many negatives fall below a threshold. A
`(B, B, B)` comparison tile (how TF Addons did semi-hard) would do both in one line but costs
cubic memory. Here each anchor's negative distances are sorted once and every query is
answered by a row-wise binary search over that sorted row: `O(A B log B)` work and
`O(A B)` memory. Indices are found on gradient-stopped distances; the selected distances
are then gathered from the differentiable matrix, so the gradient reaches exactly the
selected entries.
"""

from __future__ import annotations

from keras import ops

from tftriplet.distances import get_distance
from tftriplet.masks import anchor_masks, anchor_pair_masks
from tftriplet.searches import row_searchsorted


class AnchorRows:
    """Rows of a distance matrix with their masks and each anchor's negatives sorted.

    The rows are those of the anchors `anchor_index` against all `B` samples (all
    `B` anchors, the square matrix, when `anchor_index` is None), so mining `A`
    anchors costs `O(A * B)` memory. With `valid` (bool `(B,)`), only the valid
    columns are positives or negatives: a fixed-size pool with empty slots (a cross-batch
    memory, `tftriplet.memory`) mines as if the invalid columns were not there.

    Attributes:
        distances: the differentiable `(A, B)` distances.
        positive: bool `(A, B)`, `[a, j]`: j is valid, not the anchor itself and has its
            label.
        negative: bool `(A, B)`, `[a, k]`: k is valid and has another label.
        num_negatives: int32 `(A,)`, negatives per anchor.
        negative_order: int32 `(A, B)`, row a's column indices by increasing distance,
            negatives first.
        sorted_negatives: `(A, B)` gradient-stopped negative distances in that order,
            non-negatives padded with a value above every distance.
    """

    def __init__(self, labels, distances, anchor_index=None, valid=None):
        self.distances = distances
        if anchor_index is None:
            self.positive, self.negative = anchor_masks(labels)
        else:
            self.positive, self.negative = anchor_pair_masks(labels, anchor_index)
        if valid is not None:  # invalid columns are neither positives nor negatives
            columns = ops.expand_dims(ops.convert_to_tensor(valid, "bool"), 0)
            self.positive = ops.logical_and(self.positive, columns)
            self.negative = ops.logical_and(self.negative, columns)
        self.num_negatives = ops.sum(ops.cast(self.negative, "int32"), axis=1)
        plain = ops.stop_gradient(distances)
        # initial=0 (distances are >= 0): a replica may have no anchors at all.
        pad = ops.max(plain, initial=0.0) + 1.0
        keyed = ops.where(self.negative, plain, pad)
        self.negative_order = ops.cast(ops.argsort(keyed, axis=1), "int32")
        self.sorted_negatives = ops.take_along_axis(keyed, self.negative_order, axis=1)

    def negatives_below(self, thresholds, inclusive):
        """`(A, Q)` counts of anchor i's negatives `<` (or `<=`) `thresholds[i, q]`."""
        side = "right" if inclusive else "left"
        counts = row_searchsorted(self.sorted_negatives, thresholds, side)
        # The padding sits above every distance but not above every threshold (d + margin).
        return ops.minimum(counts, ops.expand_dims(self.num_negatives, 1))

    def negative_distance_at_rank(self, rank):
        """Distance from anchor i to its `rank[i, q]`-th closest negative (differentiable)."""
        columns = ops.take_along_axis(self.negative_order, rank, axis=1)
        return ops.take_along_axis(self.distances, columns, axis=1)


def anchor_rows(labels, embeddings, distance, anchor_index=None, valid=None):
    """`AnchorRows` of the anchors `anchor_index` against the whole batch.

    With `anchor_index=None` the rows of all anchors (the `(B, B)` matrix); else only the
    `(A, B)` rows: nothing of size `B x B` is built. The distances are the distance
    object's differentiable matrix (`tftriplet.distances.Distance.matrix`). `valid` (bool
    `(B,)`, or None for all) marks the columns that may be positives or negatives.
    """
    distances = get_distance(distance).matrix(embeddings, anchor_index)
    return AnchorRows(labels, distances, anchor_index, valid)


def hardest_positive_distance(rows):
    """`max_j d(i, j)` over anchor i's positives; 0 where it has none. Shape `(A,)`."""
    # Distances are >= 0, so a masked-out 0 never beats a real positive (initial=0: a
    # replica may have no anchors).
    return ops.max(ops.where(rows.positive, rows.distances, 0.0), axis=1, initial=0.0)


def hardest_negative_distance(rows):
    """`min_k d(i, k)` over anchor i's negatives (any value where it has none). `(A,)`."""
    rank = ops.zeros((ops.shape(rows.distances)[0], 1), dtype="int32")
    return ops.squeeze(rows.negative_distance_at_rank(rank), axis=1)


def semi_hard_negative_distance(rows):
    """FaceNet's semi-hard negative for every anchor-positive pair `(i, j)`, `(A, B)`.

    The closest negative of anchor i strictly farther than `d(i, j)`; if none is farther,
    the farthest negative of i. Meaningful only where i has a negative.
    """
    anchor_positive = ops.stop_gradient(rows.distances)
    not_farther = rows.negatives_below(anchor_positive, inclusive=True)
    last = ops.maximum(ops.expand_dims(rows.num_negatives, 1) - 1, 0)
    rank = ops.minimum(not_farther, last)
    return rows.negative_distance_at_rank(rank)
