"""The class kernel of TensorFlow graphs: one block's counts in one XLA-compiled pass.

In a TensorFlow graph that XLA does not compile (`tf.function`, where Keras runs a train
step on a CPU), each op makes its own pass over the `(A, B)` block, and the search kernel's
binary search and histogram run on one thread. Here one XLA function, which the graph
calls as a single op, takes the block's matrix product (`Distance.product`, the one
`A x B x D` step, left to TensorFlow's matrix library) and in one fused pass computes the
distances, each negative's `r_ik` by comparing it with the keys `fl(d_ij + m)` of a fixed
number of positive slots (the compare kernel's counts, `tftriplet.engine.counting`), its
slope `-r_ik dd/d(.)`, and the histogram bin of its `r`. The histogram itself is
TensorFlow's multi-threaded bincount (XLA's scatter runs serially on a CPU), and gives
each positive's `c_ij`: the negatives of its anchor with `r_ik >= q_ij`, where `q_ij` is
the number of the anchor's keys at least `fl(d_ij + m)`.

Shapes are fixed when XLA compiles, so the number of slots is one of `SLOT_BUCKETS`, the
first that holds the largest class (chosen when the graph runs; each bucket is compiled
the first time it is taken); classes above the last are counted by the search kernel.
"""

from __future__ import annotations

import functools

import numpy as np
from keras import ops

from tftriplet.backend_ops import xla_function
from tftriplet.engine.counting import positive_slots, write_at_slots
from tftriplet.histograms import bincount_flat_ids, flat_bin_ids


def fused_slopes(product, points, row_points, rows, order, margin, distance, whole, slots):
    """`(G, terms per row, positive triples per row)` of a block, counted in one compiled
    pass.

    Args:
        product: `(A, B)`, `distance.product(points, row_points)`.
        points: the batch's `Points`.
        row_points: the anchors' `Points`.
        rows: the anchors' `tftriplet.engine.counting.Rows`.
        order: `LabelTable.order`.
        margin: the margin `m`.
        distance: the `tftriplet.distances.Distance`.
        whole: the rows are the whole batch in order (`Distance.between`).
        slots: positive slots per anchor, a Python int at least the largest class size.

    Returns:
        `G = slopes(W, d)` `(A, B)` (the per-pair gradient coefficients), the terms
        `sum_k W_ik d_ik + m c_i` and the positive triples `c_i = sum_j c_ij` per anchor.
    """
    margin = ops.convert_to_tensor(margin, dtype=product.dtype)
    if product.shape[1] == 0:  # an empty batch: no triples (and nothing to scatter into)
        zero = ops.zeros(ops.shape(product)[:1], product.dtype)
        return product, zero, zero
    count = _compiled_count(distance, slots, whole)
    g, negative_terms, bin_ids, at_slots, columns, valid, above = count(
        product, points, row_points, rows, order, margin
    )
    histogram = bincount_flat_ids(bin_ids, slots + 1, product.dtype)
    at_least = ops.flip(ops.cumsum(ops.flip(histogram, axis=1), axis=1), axis=1)  # #{r >= v}
    zero = ops.zeros((), product.dtype)
    c = ops.where(valid, ops.take_along_axis(at_least, above, axis=1), zero)
    # the positives' slopes over the block's zeros there (G is 0 at the anchor's column)
    g = write_at_slots(g, rows, columns, valid, ops.where(valid, distance.slopes(c, at_slots),
                                                          zero))
    positive = ops.sum(c, axis=1)
    terms = ops.sum(negative_terms, axis=1) + ops.sum(c * at_slots, axis=1) + margin * positive
    return g, terms, positive


@functools.cache
def _compiled_count(distance, slots, whole):
    """The XLA function of one distance, number of slots and `whole`."""

    def count(product, points, row_points, rows, order, margin):
        d = distance.finish(product, points, row_points, whole)
        columns, _, valid = positive_slots(rows, order, ops.arange(slots, dtype="int32"))
        at_slots = ops.take_along_axis(d, columns, axis=1)
        keys = ops.where(valid, at_slots + margin, -np.inf)  # a non-positive slot counts nothing
        r = ops.zeros(ops.shape(d), "int32")
        above = ops.zeros(ops.shape(keys), "int32")  # q_ij (itself included, so >= 1)
        for t in range(slots):
            key = keys[:, t:t + 1]
            r = r + ops.cast(ops.greater(key, d), "int32")
            above = above + ops.cast(ops.greater_equal(key, keys), "int32")
        r = ops.where(rows.negative(), r, 0)  # r = 0 (a bin no c reads) off the negatives
        w = -ops.cast(r, d.dtype)
        return (distance.slopes(w, d), w * d, flat_bin_ids(r, slots + 1), at_slots, columns,
                valid, above)

    return xla_function(count)
