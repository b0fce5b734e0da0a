"""The hinge counted instead of enumerated: per-pair weights `W` for a block of anchor rows.

For an anchor `i`, a positive `j` and a negative `k`, the hinge `d_ij - d_ik + m` is
positive iff `d_ik < fl(d_ij + m)`. Everything batch-all needs is two counts:

    c_ij = #{negatives k of i : d_ik < fl(d_ij + m)}    (positive hinges of pair (i, j))
    r_ik = #{positives j of i : fl(d_ij + m) > d_ik}    (positive hinges of pair (i, k))

so that, with `W_ij = c_ij` on positive pairs, `W_ik = -r_ik` on negative pairs and
`N = sum_ij c_ij` the positive triples,

    sum of hinges = sum_ij W_ij d_ij + m N,     d (sum of hinges) / d d_ij = W_ij.

`W` is a count: constant almost everywhere, so the gradient is analytic
(`tftriplet.distances.Distance`). Three kernels compute it (`tftriplet.engine.plan`):

- **search**: each anchor's positives are its class, read off one sort of the labels
  (`LabelTable`), so nothing of length `B` is sorted; their keys `fl(d_ij + m)` are
  sorted, every negative is placed among them by a binary search (`r`) and a histogram of
  those places gives `c`. `O(B^2 log k)` for `k` positives per anchor; shapes depend on `k`.
- **compare**: the same counts from one pass per positive slot: `key > d` over the row
  gives `r` by accumulation and `c` by a row sum. `O(B^2 k)` without sort, search or
  scatter: what XLA and `jax.jit` compile. `slot_weights` unrolls it over a fixed number
  of slots; `compare_weights` loops `k` times whatever `k` is.
- **merged**: one sort of each whole row, positives keyed by `d_ij + m` and negatives by
  `d_ik`, a positive before a negative of equal key; `c` and `r` are prefix counts in that
  order. `O(B^2 log B)`, independent of `k`.

The merged sort is an integer sort of the float bits (non-negative IEEE floats order like
their bit patterns) with the pair type in the lowest bit, so ties are broken exactly.

Reference:
    Hermans, Beyer, Leibe. "In Defense of the Triplet Loss for Person Re-Identification",
    2017, https://arxiv.org/abs/1703.07737 (batch-all, averaged over the non-zero terms).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from keras import backend, ops

from tftriplet.backend_ops import (
    bitcast,
    gpu_comparable,
    matmul_t,
    scatter_into,
    sequential_loop,
)
from tftriplet.searches import row_search_counts, sorted_searchsorted


class Rows(NamedTuple):
    """A block of anchor rows against every column of the batch.

    Attributes:
        index: int32 `(A,)`, the anchors' rows in the batch.
        labels: `(A,)`, the anchors' labels.
        columns: `(B,)`, every column's label.
        num_positives: int32 `(A,)`, the anchors' positives (valid columns of their class
            other than themselves).
        class_start: int32 `(A,)`, where the anchors' classes begin in `LabelTable.order`.
        class_size: int32 `(A,)`, the anchors' class sizes (themselves and invalid columns
            included): the slots to read from `order`.
        valid: bool `(B,)`, the columns that take part, or None for all.
    """

    index: object
    labels: object
    columns: object
    num_positives: object
    class_start: object
    class_size: object
    valid: object = None

    def same(self):
        """bool `(A, B)`: the column has the anchor's label (the anchor itself too)."""
        return ops.equal(ops.expand_dims(self.labels, 1), ops.expand_dims(self.columns, 0))

    def not_self(self):
        """bool `(A, B)`: the column is not the anchor (nor an invalid column)."""
        columns = gpu_comparable(ops.arange(ops.shape(self.columns)[0], dtype="int32"))
        not_self = ops.not_equal(ops.expand_dims(gpu_comparable(self.index), 1),
                                 ops.expand_dims(columns, 0))
        return not_self if self.valid is None else ops.logical_and(not_self, self.valid)

    def negative(self, same=None):
        """bool `(A, B)`: the column is a negative of the anchor; `same` is `self.same()`
        where the caller has it already."""
        negative = ops.logical_not(self.same() if same is None else same)
        return negative if self.valid is None else ops.logical_and(negative, self.valid)


class LabelTable(NamedTuple):
    """The batch's classes from one sort of its labels: `O(B log B)`, nothing `B x B`.

    Every per-sample array has one more (zero) entry at the end, so that gathering the
    rows of a block never reads an empty tensor (which XLA cannot compile when the batch
    size is unknown when tracing).

    Attributes:
        labels: `(B,)`, comparable on the GPU (`tftriplet.backend_ops.gpu_comparable`).
        row_labels: `(B + 1,)`, the same padded.
        num_positives: int32 `(B + 1,)`, each sample's positives (valid columns of its
            class other than itself).
        class_start: int32 `(B + 1,)`, where each sample's class begins in `order`.
        class_size: int32 `(B + 1,)`, each sample's class size, itself included.
        order: int32 `(B + 1,)`, the samples sorted by label: each class a contiguous run.
        valid: bool `(B,)`, the columns that take part, or None for all.
    """

    labels: object
    row_labels: object
    num_positives: object
    class_start: object
    class_size: object
    order: object
    valid: object = None

    def rows(self, index):
        """The `Rows` of the anchors `index` (int32 `(A,)`)."""
        return Rows(index, ops.take(self.row_labels, index), self.labels,
                    *(ops.take(x, index) for x in (self.num_positives, self.class_start,
                                                    self.class_size)),
                    valid=self.valid)


def label_table(labels, valid=None):
    """The `LabelTable` of class ids `labels` `(B,)`; `valid` (bool `(B,)`, or None for all)
    marks the columns that take part (the anchors must be among them)."""
    order = ops.cast(ops.argsort(labels), "int32")
    ordered = ops.take(labels, order)
    start = sorted_searchsorted(ordered, labels, side="left")
    size = sorted_searchsorted(ordered, labels, side="right") - start
    if valid is None:
        positives = size - 1
    else:  # the valid members of each class, from a prefix count along `order`
        taking = ops.cast(valid, "int32")
        count = ops.concatenate([ops.zeros((1,), "int32"),
                                 ops.cumsum(ops.take(taking, order))], axis=0)
        positives = ops.take(count, start + size) - ops.take(count, start) - taking
    comparable = gpu_comparable(labels)
    return LabelTable(comparable, one_more(comparable), one_more(positives), one_more(start),
                      one_more(size), one_more(order), valid)


def one_more(x):
    """`x` with one more zero row."""
    return ops.concatenate([x, ops.zeros((1, *ops.shape(x)[1:]), x.dtype)], axis=0)


def one_more_column(x):
    """`x` `(A, N)` with one more zero column (`(A, 1)` zeros when `N` is 0)."""
    return ops.concatenate([x, ops.zeros((ops.shape(x)[0], 1), x.dtype)], axis=1)


def positive_slots(rows, order, slots):
    """The columns of the anchors' positive slots `slots` (int32 `(S,)`), `(A, S)`, whether
    each is in the class, and whether it is a positive (in the class, valid, not the
    anchor itself).

    Slot `t` of an anchor is position `class_start + t` of `order` (`LabelTable.order`):
    its class's samples, the anchor among them."""
    last = ops.shape(order)[0] - 1
    position = ops.expand_dims(rows.class_start, 1) + ops.expand_dims(slots, 0)
    columns = ops.take(order, ops.minimum(position, last))
    inside = ops.less(ops.expand_dims(slots, 0), ops.expand_dims(rows.class_size, 1))
    if rows.valid is not None:
        inside = ops.logical_and(inside, ops.take(one_more(rows.valid), columns))
    not_anchor = ops.not_equal(gpu_comparable(columns),
                               gpu_comparable(ops.expand_dims(rows.index, 1)))
    valid = ops.logical_and(inside, not_anchor)
    return columns, inside, valid


def search_weights(d, rows, order, margin, k):
    """`(W, positive triples per row)` by sorting the positives and searching.

    Every column is placed among the sorted keys `fl(d_ij + m)` of its anchor's positives:
    `s_ik = #{keys <= d_ik}`, so `r_ik = n_i - s_ik` for a negative, and `c` of the
    positive at sorted position `p` is the number of negatives with `s_ik <= p`: the
    columns below each key (`tftriplet.searches.row_search_counts`), less the anchor's
    own class (read off the `k` class slots), so no `B x B` label mask is needed (invalid
    columns, where some are, are not counted and get `s = n`: weight 0). The class
    columns' weights are then written over: `c` at the positives, 0 at the anchor.

    Args:
        d: `(A, B)` distances of the anchors' rows.
        rows: the `Rows`.
        order: `LabelTable.order`.
        margin: the margin `m`.
        k: the largest class size (slots per anchor), an int or a scalar tensor.
    """
    dtype = d.dtype
    slots = ops.arange(k, dtype="int32")
    columns, in_class, valid = positive_slots(rows, order, slots)
    at_slots = ops.take_along_axis(d, columns, axis=1)
    # not positives (the anchor, other classes' columns) sort last as +inf
    keys = ops.where(valid, at_slots + margin, np.inf)
    by_key = ops.argsort(keys, axis=1)
    keys = ops.take_along_axis(keys, by_key, axis=1)
    columns = ops.take_along_axis(columns, by_key, axis=1)
    n = ops.expand_dims(rows.num_positives, 1)
    # s - n: -r at a negative
    s_minus_n, below = row_search_counts(keys, d, dtype, start=-n, counted=rows.valid)
    if rows.valid is not None:  # invalid columns: weight 0
        s_minus_n = ops.where(rows.valid, s_minus_n, ops.zeros((), dtype))
    # less the class's own valid columns
    below = below - row_search_counts(keys, at_slots, dtype, counted=in_class)[1]
    real = ops.less(ops.expand_dims(slots, 0), n)
    c = ops.where(real, ops.cast(below, dtype), ops.zeros((), dtype))
    return write_at_slots(s_minus_n, rows, columns, real, c), ops.sum(c, axis=1)


def write_at_slots(block, rows, columns, positive, values):
    """`block` `(A, B)` with each positive slot's value written at its column.

    Args:
        block: `(A, B)`, the anchors' rows: the caller's fresh tensor, written into where
            the backend can (`tftriplet.backend_ops.scatter_into`).
        rows: the `Rows`.
        columns: int32 `(A, S)`, the slots' columns (`positive_slots`).
        positive: bool `(A, S)`, the slots that hold a positive.
        values: `(A, S)`, 0 where `positive` is False: those slots write their 0 at the
            anchor's own column (every anchor has one), so no index is out of range.
    """
    row = ops.broadcast_to(
        ops.expand_dims(ops.arange(ops.shape(block)[0], dtype="int32"), 1), ops.shape(columns)
    )
    columns = ops.where(positive, columns, ops.expand_dims(rows.index, 1))
    index = ops.reshape(ops.stack([row, columns], axis=-1), (-1, 2))
    return scatter_into(block, index, ops.reshape(values, (-1,)))


def compare_weights(d, rows, order, margin, k):
    """`(W, positive triples per row)` from one comparison pass per positive slot.

    Arguments as `search_weights`; `k` may be a tensor (the loop runs `k` times).
    """
    dtype = d.dtype
    negative = rows.negative()
    columns_of_row = ops.expand_dims(ops.arange(ops.shape(d)[1], dtype="int32"), 0)
    # keys are read from a copy with one more column where the batch size is unknown when
    # tracing: XLA cannot compile a gather from what may be an empty row
    keyed = d if d.shape[1] is not None else one_more_column(d)

    def one_slot(t, w):
        column, _, valid = positive_slots(rows, order, ops.reshape(t, (1,)))
        key = ops.where(valid, ops.take_along_axis(keyed, column, axis=1) + margin, -np.inf)
        hinge = ops.logical_and(negative, ops.greater(key, d))  # (i, slot, k) positive
        c = ops.sum(ops.cast(hinge, dtype), axis=1, keepdims=True)
        at_column = ops.equal(column, columns_of_row)
        return w + ops.where(at_column, c, ops.where(hinge, -1.0, 0.0))

    w = sequential_loop(k, one_slot, ops.zeros_like(d))
    return w, ops.sum(ops.relu(w), axis=1)


def slot_weights(d, rows, order, margin, slots):
    """`(W, positive triples per row)` of the compare kernel for classes of at most `slots`
    samples (a Python int): the loop over the slots unrolled.

    `r` is one pass that compares each column with every key, each `c_t` a row sum, and
    every shape is fixed, so XLA fuses each of them into one loop over the block.
    Arguments as `search_weights`.
    """
    dtype = d.dtype
    columns, _, valid = positive_slots(rows, order, ops.arange(slots, dtype="int32"))
    # a gather from what may be an empty row cannot compile (`compare_weights`)
    keyed = d if d.shape[1] is not None else one_more_column(d)
    keys = ops.where(valid, ops.take_along_axis(keyed, columns, axis=1) + margin, -np.inf)
    negative = rows.negative()
    r = ops.zeros_like(d)
    c = []
    for t in range(slots):
        hinge = ops.greater(keys[:, t:t + 1], d)
        r = r + ops.cast(hinge, dtype)
        c.append(ops.sum(ops.cast(ops.logical_and(negative, hinge), dtype), axis=1))
    c = ops.stack(c, axis=1)  # 0 at a slot that is no positive: its key is -inf
    w = ops.where(negative, -r, ops.zeros((), dtype))
    if d.shape[1] not in (None, 0):
        return write_at_slots(w, rows, columns, valid, c), ops.sum(c, axis=1)
    # the batch is or may be empty: scattered into one more column (XLA compiles no
    # scatter into an empty tensor)
    w = write_at_slots(one_more_column(w), rows, columns, valid, c)
    return w[:, :-1], ops.sum(c, axis=1)


def _int_view(float_dtype):
    """The signed integer dtype of the same width, and its maximum."""
    if float_dtype == "float64":
        return "int64", 2**63 - 1
    return "int32", 2**31 - 1


def _merged_order_keys(d, rows, margin):
    """Integer sort keys whose descending order is the merged ascending order of each row.

    `key = MAX - 2 * bits(value) - is_negative`: for non-negative floats the bit pattern
    is monotone in the value, and the result never overflows. The anchor's own column gets
    the dtype's minimum, so it sorts last in every row.
    """
    int_dtype, int_max = _int_view(backend.standardize_dtype(d.dtype))
    same = rows.same()
    bits = bitcast(ops.where(same, d + margin, d), int_dtype)
    base = ops.where(same, ops.cast(int_max, int_dtype), ops.cast(int_max - 1, int_dtype))
    keys = (base - bits) - bits
    return ops.where(rows.not_self(), keys, ops.cast(-int_max - 1, int_dtype))


def merged_weights(d, rows, margin):
    """`(W, positive triples per row)` from one full sort of every row."""
    dtype = d.dtype
    a, b = ops.shape(d)[0], ops.shape(d)[1]
    sorted_keys, order = ops.top_k(_merged_order_keys(d, rows, margin), b)
    # Key parity: MAX is odd, so a key is even iff the entry is a negative. The anchor's own
    # column (last in every row, even) reads as a negative with no positive after it.
    neg = ops.equal(ops.bitwise_and(sorted_keys, 1), 0)
    negatives_so_far = _row_cumsum(ops.cast(neg, dtype))
    num_neg = negatives_so_far[:, -1:] - 1.0  # without the anchor's own column
    num_pos = ops.cast(b - 1, dtype) - num_neg
    rank = ops.expand_dims(ops.cast(ops.arange(1, b + 1, dtype="int32"), dtype), 0)
    # c of a positive: the negatives before it; -r of a negative: minus the positives after
    w_sorted = ops.where(neg, (rank - num_pos) - negatives_so_far, negatives_so_far)
    per_row = ops.sum(ops.relu(w_sorted), axis=1)
    # Back to the column order: a segment sum over flat indices is a scatter (each index
    # occurs once), and on CPU much faster than a scatter op.
    row_start = ops.expand_dims(ops.arange(a, dtype="int32") * ops.cast(b, "int32"), 1)
    flat_index = ops.reshape(ops.cast(order, "int32") + row_start, (-1,))
    w = ops.segment_sum(ops.reshape(w_sorted, (-1,)), flat_index, num_segments=a * b,
                        sorted=False)
    return ops.reshape(w, (a, b)), per_row


def _row_cumsum(x, block=32):
    """Inclusive cumulative sum along rows of a 0/1 matrix, as a blocked matrix product.

    Within blocks of `block` columns the prefix sums are one product with a triangular
    matrix of ones, and the block totals are carried with a short cumulative sum. Sums of
    0/1 below 2**24 are exact in float32, so this equals `ops.cumsum`, and on CPU it is
    several times faster. Falls back to `ops.cumsum` when the row length is unknown or not
    a multiple of `block`.
    """
    n = x.shape[1]
    if n is None or n % block != 0 or n <= block:
        return ops.cumsum(x, axis=1)
    rows = ops.shape(x)[0]
    # [p, q] = 1 for p <= q; a constant (ops.triu fails in tf.function before Keras 3.7)
    triangle = ops.convert_to_tensor(np.triu(np.ones((block, block))), dtype=x.dtype)
    within = ops.reshape(matmul_t(ops.reshape(x, (-1, block)), triangle), (rows, -1, block))
    totals = within[:, :, -1]
    carried = ops.cumsum(totals, axis=1) - totals
    return ops.reshape(within + ops.expand_dims(carried, 2), (rows, n))
