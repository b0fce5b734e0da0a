"""Which kernel a bench row ran: the table's kernel and anchor-block columns.

The one place where the bench asks the loss which kernel it picks, so that it reports what
the loss decides rather than deciding again.
"""

from __future__ import annotations

#: How the table names the engine's kernels (tftriplet/engine/plan.py).
KERNEL_NOTES = {
    "triples": "every triple",
    "search": "sorts the positives, searches",
    "compare": "compares with the positives",
    "fused": "compares with the positives, one XLA op a block",
    "merged": "sorts whole rows",
}


def bench_mode(backend, jit):
    """How a bench step executes: `jax.jit` and `jit_compile=True` compile, a
    `tf.function` without it is a graph, PyTorch runs eagerly."""
    if jit or backend == "jax":
        return "compiled"
    return "graph" if backend == "tensorflow" else "eager"


def kernel_columns(method, batch_size, per_class, backend, jit, row_sort, replicas):
    """`(kernel, anchor_block)` of one measurement; `None` where a column does not apply.

    `kernel` is the kernel the engine's plan runs for this batch (`KERNEL_NOTES`), or
    `"<replicas> replicas"` for `cross_replica`; `anchor_block` the anchors per block when
    the batch is computed in blocks (each replica's anchors for `cross_replica`).
    """
    from tftriplet.engine import plan_batch_all

    if method == "cross_replica":
        plan = plan_batch_all(batch_size, mode="graph")
        return f"{replicas} replicas", plan.block_size(batch_size // replicas, batch_size)
    if method not in ("dense", "sorted"):
        return None, None
    plan = plan_batch_all(batch_size, method=method, row_sort=row_sort,
                          mode=bench_mode(backend, jit))
    block = plan.block_size(batch_size, batch_size)
    return plan.kernel_for(per_class - 1, batch_size), block if block < batch_size else None


def kernel_note(result):
    """The table's note on a result's kernel: `KERNEL_NOTES`' words, or the kernel as is."""
    kernel = result.get("kernel")
    return KERNEL_NOTES.get(kernel, kernel or "")
