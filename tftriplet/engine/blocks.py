"""The batch-all driver: anchors in blocks against the whole batch, sums and gradient.

For each block of anchor rows the distance rows `(A, B)` give the per-pair weights `W`
(`tftriplet.engine.counting` or `tftriplet.engine.triples`, as the plan says); the term
sum, the counts and the gradient `sum W dd/de` are accumulated, the gradient by rows
(`G_block @ p`, added to the anchors' rows) and by columns (`G_block^T @ p_block`), so the
largest tensor is `(block, B)` (`(block, B, B)` for the per-triple form). A plan with one
block covering the batch is the whole-matrix form.

Rows are gathered from copies of the batch with one more (zero) row, and added into an
accumulator of `B + 1` rows (`tftriplet.engine.counting.LabelTable` pads the labels the
same way): then no gather or scatter sees an empty tensor, which XLA cannot compile when
the batch size is unknown when tracing (an empty batch).
"""

from __future__ import annotations

from typing import NamedTuple

from keras import ops

from tftriplet.backend_ops import (
    accumulator_zeros,
    add_to_rows,
    concrete_int,
    matmul_t,
    row_dot,
    sequential_loop,
    subtract_product,
)
from tftriplet.distances import get_distance
from tftriplet.engine import counting, fused
from tftriplet.engine.counting import label_table, one_more
from tftriplet.engine.plan import BLOCKS_AT_ONCE, SLOT_BUCKETS
from tftriplet.engine.triples import triple_weights
from tftriplet.statistics import TripletSums


class _Totals(NamedTuple):
    """The loop's carry: sums over the blocks done so far."""

    terms: object
    positive: object
    by_rows: object  # (B + 1, D): gradient w.r.t. the points through the anchors' rows
    by_columns: object  # (B, D): through the columns
    column_scale: object  # (B,): colsum(G), the columns' norm term


def _slopes_fn(plan, table, margin, soft, k, distance, points, whole):
    """`(product, row_points, rows) -> (G, terms per row, positive triples per row)` for the
    plan's kernel, from a block's `distance.product`."""

    def finished(kernel):  # kernel(d, rows) -> (W, terms, positive)
        def slopes(product, row_points, rows):
            d = distance.finish(product, points, row_points, whole)
            w, terms, positive = kernel(d, rows)
            return distance.slopes(w, d, overwrite=True), terms, positive  # w's last use

        return slopes

    def counted(count):  # count(d, rows) -> (W, positive)
        def kernel(d, rows):
            w, positive = count(d, rows)
            return w, row_dot(w, d) + margin * positive, positive

        return finished(kernel)

    def fused_with(slots):
        return lambda product, row_points, rows: fused.fused_slopes(
            product, points, row_points, rows, table.order, margin, distance, whole, slots)

    def slots_with(slots):
        return counted(
            lambda d, rows: counting.slot_weights(d, rows, table.order, margin, slots))

    if plan.kernel == "triples":
        return finished(lambda d, rows: triple_weights(d, rows, margin, soft))
    merged = counted(lambda d, rows: counting.merged_weights(d, rows, margin))
    if plan.kernel == "merged":
        return merged
    search = counted(lambda d, rows: counting.search_weights(d, rows, table.order, margin, k))
    if plan.kernel == "fused":
        class_kernel = _in_buckets(k, fused_with, search)
    elif plan.kernel == "search":
        class_kernel = search
    else:
        class_kernel = _in_buckets(k, slots_with, counted(
            lambda d, rows: counting.compare_weights(d, rows, table.order, margin, k)))
    if plan.merged_above is None:
        return class_kernel
    few = ops.less_equal(k - 1, plan.class_limit(ops.shape(points.values)[0]))
    return _either(few, class_kernel, merged)


def _in_buckets(k, with_slots, above):
    """The function `with_slots(slots)` of the first of `SLOT_BUCKETS` that holds classes
    of `k` samples, `above` past the last: decided now or when the graph runs."""
    chosen = above
    for slots in reversed(SLOT_BUCKETS):
        chosen = _either(ops.less_equal(k, slots), with_slots(slots), chosen)
    return chosen


def _either(condition, if_true, if_false):
    """The function that runs `if_true` or `if_false` (same arguments and results) as
    `condition` says: decided now when it is known, else when the graph runs."""
    known = concrete_int(condition)
    if known is not None:
        return if_true if known else if_false
    return lambda *args: ops.cond(condition, lambda: if_true(*args), lambda: if_false(*args))


def batch_all_sums(labels, embeddings, margin, distance, soft, plan, anchor_index=None,
                   with_gradient=True, valid=None):
    """Batch-all sums over the anchors `anchor_index`, mined against the whole batch.

    Args:
        labels: class ids `(B,)`.
        embeddings: float `(B, D)` (not differentiated here: the gradient is returned).
        margin: the margin `m`.
        distance: a `tftriplet.distances.Distance` or its name.
        soft: the soft margin.
        plan: the `tftriplet.engine.plan.Plan`.
        anchor_index: int32 `(A,)` distinct anchors, or None for every row.
        with_gradient: also compute the gradient (two more `B x B x D` products).
        valid: bool `(B,)`, the rows that take part as positives and negatives (the
            anchors among them), or None for all.

    Returns:
        `TripletSums` over the anchors' valid triples: the terms, the valid and positive
        triples, and the gradient of the terms with respect to `embeddings` (or None).
    """
    distance = get_distance(distance)
    e = ops.stop_gradient(embeddings)
    dtype = e.dtype
    b = ops.shape(e)[0]
    all_anchors = anchor_index is None
    if all_anchors:
        anchor_index = ops.arange(b, dtype="int32")
    anchor_index = ops.cast(anchor_index, "int32")
    table = label_table(labels, valid)
    points = distance.prepare(e)
    padded = type(points)(*(None if x is None else one_more(x) for x in points))
    n = ops.cast(ops.take(table.num_positives, anchor_index), dtype)
    columns = ops.cast(b, dtype) if valid is None else ops.sum(ops.cast(valid, dtype))
    num_valid = ops.sum(n * (columns - 1.0 - n))  # positives x negatives, per anchor
    k = ops.max(ops.take(table.class_size, anchor_index), initial=1)  # slots per anchor
    k_now = concrete_int(k)
    k = k if k_now is None else k_now
    num_anchors = ops.shape(anchor_index)[0]
    block = plan.block_size(num_anchors, b)
    # one block of every row, in order: the distances' whole-matrix form
    whole = all_anchors and isinstance(block, int) and block == concrete_int(b)
    slopes = _slopes_fn(plan, table, margin, soft, k, distance, points, whole)
    if isinstance(block, int) and concrete_int(num_anchors) is not None:
        num_blocks = -(-concrete_int(num_anchors) // block)
    else:
        num_blocks = (ops.cast(num_anchors, "int32") + block - 1) // block
    anchors = ops.concatenate([anchor_index, ops.zeros((1,), "int32")], axis=0)

    def body(i, totals):
        start_wanted = i * block
        start = ops.maximum(ops.minimum(start_wanted, num_anchors - block), 0)
        # The last block is moved back to end at the last anchor; rows it shares with the
        # block before count once.
        position = start + ops.arange(block, dtype="int32")
        fresh = ops.greater_equal(position, start_wanted)
        index = ops.take(anchors, position)
        row_points = points if whole else padded.take(index)
        g, terms, positive = slopes(distance.product(points, row_points), row_points,
                                    table.rows(index))
        keep = ops.cast(fresh, dtype)
        totals = totals._replace(terms=totals.terms + ops.sum(terms * keep),
                                 positive=totals.positive + ops.sum(positive * keep))
        if with_gradient:
            totals = _add_gradient(totals, distance, points, row_points, index, g, keep)
        return totals

    zero = ops.zeros((), dtype)
    if with_gradient:
        initial = _Totals(zero, zero, ops.zeros_like(padded.values), accumulator_zeros(e),
                          ops.zeros((b,), dtype))
    else:
        initial = _Totals(zero, zero, zero, zero, zero)
    totals = sequential_loop(num_blocks, body, initial, overlap=BLOCKS_AT_ONCE)
    gradient = _gradient(totals, distance, points) if with_gradient else None
    return TripletSums(totals.terms, num_valid, totals.positive, gradient)


def _add_gradient(totals, distance, points, row_points, index, g, keep):
    """Add one block's `sum G dd/dp` by rows and by columns (`G = slopes(W, d)`)."""
    keep = ops.expand_dims(keep, 1)
    by_columns = subtract_product(totals.by_columns, g, row_points.values * keep)
    row_part = matmul_t(g, points.values)
    column_scale = totals.column_scale
    if distance.norm_term:
        column_scale = column_scale + ops.squeeze(matmul_t(keep, g, transpose_a=True), 0)
        row_part = row_part - ops.expand_dims(ops.sum(g, axis=1), 1) * row_points.values
    by_rows = add_to_rows(totals.by_rows, index, -row_part * keep)
    return totals._replace(by_rows=by_rows, by_columns=by_columns, column_scale=column_scale)


def _gradient(totals, distance, points):
    """The gradient w.r.t. the embeddings from the accumulated rows and columns."""
    gradient = totals.by_rows[:-1] + totals.by_columns
    if distance.norm_term:
        gradient = gradient + ops.expand_dims(totals.column_scale, 1) * points.values
    return distance.to_embeddings(gradient, points)
