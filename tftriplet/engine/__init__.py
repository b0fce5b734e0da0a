"""The batch-all engine: one plan, the kernels it chooses between, and the driver.

`batch_all_sums` is the entry point: it makes the plan (`tftriplet.engine.plan`), runs the
driver (`tftriplet.engine.blocks`) and turns non-finite embeddings into NaN sums whatever
the kernel. The loss, its statistics and the metrics all call it;
`batch_all_statistics` reduces the sums to the statistics dict.
"""

from __future__ import annotations

from keras import ops

from tftriplet.engine import blocks
from tftriplet.engine.plan import (
    METHODS,
    ROW_SORTS,
    Plan,
    check_anchor_block,
    check_method,
    plan_batch_all,
)
from tftriplet.statistics import over_positive, statistics

__all__ = [
    "METHODS",
    "ROW_SORTS",
    "Plan",
    "batch_all_statistics",
    "batch_all_sums",
    "check_anchor_block",
    "check_method",
    "plan_batch_all",
]


def batch_all_sums(labels, embeddings, margin, distance, soft=False, *, method="auto",
                   anchor_block=None, row_sort="auto", anchor_index=None,
                   with_gradient=True, valid=None):
    """Batch-all `TripletSums` of standardized inputs, by the kernel the plan chooses.

    Args:
        labels: class ids `(B,)`.
        embeddings: float `(B, D)`.
        margin: the margin `m`.
        distance: a distance name or `tftriplet.distances.Distance`.
        soft: the soft margin.
        method: `"auto"`, `"dense"` or `"sorted"` (`tftriplet.engine.plan.plan_batch_all`).
        anchor_block: anchors per block, or None.
        row_sort: `"auto"`, `"positives"` or `"merged"`.
        anchor_index: int32 `(A,)` anchors mined against the whole batch, or None for all.
        with_gradient: compute the gradient (`TripletSums.gradient`).
        valid: bool `(B,)`, the rows that take part as positives and negatives (the
            anchors among them), or None for all: a fixed-size pool with empty slots.

    Returns:
        `TripletSums`; the terms and `num_positive` are NaN when an embedding is not
        finite.
    """
    plan = plan_batch_all(embeddings.shape[0], soft=soft, method=method,
                          anchor_block=anchor_block, row_sort=row_sort)
    sums = blocks.batch_all_sums(labels, embeddings, margin, distance, soft, plan,
                                 anchor_index, with_gradient, valid)
    finite = ops.all(ops.isfinite(embeddings))
    nan = ops.cast(float("nan"), sums.terms.dtype)
    return sums._replace(terms=ops.where(finite, sums.terms, nan),
                         num_positive=ops.where(finite, sums.num_positive, nan))


def batch_all_statistics(labels, embeddings, margin, distance, soft=False, **options):
    """The batch-all statistics dict of standardized inputs: `loss` (with its gradient),
    `fraction_positive`, `num_positive` and `num_valid`; `options` as for
    `batch_all_sums`."""
    sums = batch_all_sums(labels, embeddings, margin, distance, soft, **options)
    return statistics(sums, over_positive("batch_all", soft), "num_valid", embeddings,
                      fraction=True)
