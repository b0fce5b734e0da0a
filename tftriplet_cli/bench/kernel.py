"""Which kernel a bench row ran: the table's kernel and anchor-block columns.

The one place where the bench asks the loss which kernel it picks, so that it reports what
the loss decides rather than deciding again.
"""

from __future__ import annotations

#: How the table names the sorted form's counting kernels.
KERNEL_NOTES = {"positives": "sorts the positives", "merged": "sorts whole rows"}


def kernel_columns(method, batch_size, per_class, backend, jit, row_sort, replicas):
    """`(kernel, anchor_block)` of one measurement; `None` where a column does not apply.

    `kernel` is the sorted form's counting kernel (`"positives"` or `"merged"`, as
    `choose_row_sort` decides it), or `"<replicas> replicas"` for `cross_replica`.
    `anchor_block` is the anchors per block of a blocked sorted run (each replica's
    anchors for `cross_replica`). Under XLA or `jax.jit` (the bench jits every JAX step,
    labels included) the class sizes are unknown when the step is traced.
    """
    from tftriplet.losses.batch_all_sorted import (
        auto_anchor_block,
        choose_row_sort,
        uses_whole_matrices,
    )

    if method == "cross_replica":
        return f"{replicas} replicas", min(auto_anchor_block(batch_size), batch_size // replicas)
    if method != "sorted":
        return None, None
    compiled = jit or backend == "jax"
    kernel = choose_row_sort(row_sort, batch_size, None if compiled else per_class - 1)[0]
    blocks = None if uses_whole_matrices(batch_size) else auto_anchor_block(batch_size)
    return kernel, blocks


def kernel_note(result):
    """The table's note on a result's kernel: `KERNEL_NOTES`' words, or the kernel as is."""
    kernel = result.get("sorted_kernel")
    return KERNEL_NOTES.get(kernel, kernel or "")
