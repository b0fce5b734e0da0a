"""Which batch-all kernel runs, in which anchor blocks: one decision, from what is known
when the graph is traced.

Every threshold of the engine lives here. The decision depends on the static batch size
(or its absence), the options (`method`, `soft`, `anchor_block`, `row_sort`) and how the
code executes (`tftriplet.backend_ops.execution_mode`): eagerly, in a TensorFlow graph, or
compiled by XLA (`jit_compile=True`, Keras' default on a GPU, and JAX). The number of
positives per anchor is data: where it is not known when tracing, the plan states the
rule that the kernel applies when it runs.

The kernels (`tftriplet.engine.counting`, `tftriplet.engine.triples`):

- `"triples"`: every triple of a block of anchors, `(block, B, B)` tensors (the dense
  form, and the soft margin, which has no counting shortcut);
- `"search"`: the hinge counted with each anchor's positives sorted and every negative
  placed among them by a binary search and a histogram, `O(B^2 log k)`;
- `"compare"`: the same counts from comparisons with each positive slot, `O(B^2 k)`
  without sorting, searching or scattering: what XLA compiles well; unrolled over a fixed
  number of slots for classes of up to the last of `SLOT_BUCKETS` samples, a loop over
  the slots above;
- `"fused"` (`tftriplet.engine.fused`): in a TensorFlow graph, the comparisons, distances
  and slopes of each block compiled by XLA into one pass, for classes of up to the last
  of `SLOT_BUCKETS` samples (the search kernel above);
- `"merged"`: the hinge counted by sorting whole rows, `O(B^2 log B)`, for batches where
  an anchor has many positives (the class kernels cost grows with `k`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from keras import backend, ops

from tftriplet.backend_ops import (
    accelerator_visible,
    concrete_int,
    execution_mode,
    xla_compiles_in_graphs,
)

#: The values of `method`.
METHODS = ("auto", "dense", "sorted")

#: The values of `row_sort`, how the hinge is counted: `"positives"` forces the class
#: kernel, `"merged"` the whole-row sort, `"auto"` lets the plan choose.
ROW_SORTS = ("auto", "merged", "positives")

#: `method="auto"` evaluates every triple up to this static batch size, and evaluates the
#: soft margin in blocks of at most this many anchors.
DENSE_MAX_BATCH = 32

#: The class kernels run while no anchor has more than `B // CLASS_KERNEL_DIVISOR`
#: positives; above, the whole-row sort is as fast (docs/performance.md).
CLASS_KERNEL_DIVISOR = 8

#: The class kernel of each execution mode: binary search and histograms where shapes may
#: depend on values (their cost is `log k` per entry), comparisons under XLA, and in a
#: TensorFlow graph the comparisons of each block compiled by XLA (one op of the graph;
#: the search kernel where XLA cannot compile, `backend_ops.xla_compiles_in_graphs`).
CLASS_KERNEL = {"eager": "search", "graph": "fused", "compiled": "compare"}

#: The slots per anchor the fused and compare kernels are compiled for: the first that
#: holds the largest class is taken when the step runs. The fused kernel's comparisons
#: cost `k` per entry against the search kernel's `log k`: above 32 the search kernel is
#: faster; the compare kernel loops over the slots above 32 (docs/performance.md).
SLOT_BUCKETS = (4, 8, 16, 32)

#: The compare kernel's cost grows with `k` (one pass a positive) and XLA's whole-row sort
#: costs about as much as 256 passes at B=2048 and at 8192: above 256 positives per
#: anchor (or `B // CLASS_KERNEL_DIVISOR`, if fewer) the rows are sorted whole
#: (docs/performance.md).
COMPARE_MAX_POSITIVES = 256

#: Blocks a TensorFlow graph computes at once: the single-threaded binary search and
#: histogram of one block run beside the other's products (10% at B=8192 on 2 cores),
#: for twice one block's temporaries (docs/performance.md).
BLOCKS_AT_ONCE = 2

#: The automatic anchor block of the counting kernels keeps a `(block, B)` tensor near this
#: many entries (small enough for the allocator to reuse its buffers).
COUNT_BLOCK_ENTRIES = 2**21

#: Compiled by XLA on a CPU (JAX, or `jit_compile` where no GPU or TPU is visible), the
#: counting kernels' blocks keep a `(block, B)` tensor near this many entries: 1 MB in
#: float32, so that a block's passes over it work in the cache (XLA runs each fusion
#: over the whole block; 1.5-2x faster than `COUNT_BLOCK_ENTRIES`, docs/performance.md).
CPU_XLA_BLOCK_ENTRIES = 2**18

#: Under PyTorch on a CPU the counting kernels' blocks keep a `(block, B)` tensor near this
#: many entries (4 MB in float32): PyTorch allocates each block's tensors anew, and with
#: blocks of `COUNT_BLOCK_ENTRIES` the C allocator often hands their memory back to the
#: system between blocks, for the next block to page-fault it in again...
TORCH_CPU_BLOCK_ENTRIES = 2**20

#: ... but with no fewer anchors than this: each block costs PyTorch a fixed time in its
#: many small ops, which outweighs the faults in smaller blocks (docs/performance.md).
TORCH_CPU_MIN_BLOCK = 128

#: The automatic anchor block of the per-triple form keeps a `(block, B, B)` tensor near this
#: many entries.
TRIPLE_BLOCK_ENTRIES = 2**22


def check_method(method):
    """`method` if it is one of `METHODS`, else a `ValueError`."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(
            f"method must be one of {', '.join(repr(m) for m in METHODS)}; got {method!r}."
        )
    return method


def check_anchor_block(anchor_block):
    """`anchor_block` if it is None or a positive int, else a `ValueError`."""
    if anchor_block is None:
        return None
    if isinstance(anchor_block, bool) or not isinstance(anchor_block, (int, np.integer)):
        raise ValueError(
            "anchor_block must be None (chosen from the batch size) or a positive integer; "
            f"got {anchor_block!r}."
        )
    if anchor_block < 1:
        raise ValueError(f"anchor_block must be at least 1; got {anchor_block}.")
    return int(anchor_block)


@dataclass(frozen=True)
class Plan:
    """How batch-all is evaluated.

    Attributes:
        kernel: `"triples"`, `"search"`, `"compare"`, `"fused"` or `"merged"` (see the module).
        merged_above: the class kernels give way to `"merged"` when an anchor has more than
            `batch_size // merged_above` positives (None: never)...
        max_positives: ... or more than this many (None: no such bound).
        block: anchors per block: an int, `"whole"` (every anchor in one block) or
            `"auto"` (from the batch size, within `budget`).
        mode: the execution mode the plan was made for.
        count_entries: the entries of an automatic counting block's `(block, B)` tensor:
            `CPU_XLA_BLOCK_ENTRIES` compiled by XLA on a CPU, `TORCH_CPU_BLOCK_ENTRIES`
            under PyTorch on a CPU, else `COUNT_BLOCK_ENTRIES`.
        min_block: the fewest anchors of an automatic counting block (if the batch has
            them): `TORCH_CPU_MIN_BLOCK` under PyTorch on a CPU, else 1.
    """

    kernel: str
    merged_above: int | None
    max_positives: int | None
    block: int | str
    mode: str
    count_entries: int = COUNT_BLOCK_ENTRIES
    min_block: int = 1

    @property
    def budget(self):
        """`(entries, cap, rank, floor)` of an `"auto"` block: its `(block, B)` (rank 1)
        or `(block, B, B)` (rank 2) tensor stays near `entries`, with at most `cap` anchors
        (None: no cap) and at least `floor`. The `"triples"` kernel:
        `TRIPLE_BLOCK_ENTRIES`, `DENSE_MAX_BATCH`, rank 2, 1; the counting kernels:
        `count_entries`, no cap, rank 1, `min_block`."""
        if self.kernel == "triples":
            return TRIPLE_BLOCK_ENTRIES, DENSE_MAX_BATCH, 2, 1
        return self.count_entries, None, 1, self.min_block

    def block_size(self, num_anchors, batch_size):
        """Anchors per block, capped at the number of anchors, at least 1: a Python int
        when the sizes are known, else a scalar tensor."""
        a_now, b_now = concrete_int(num_anchors), concrete_int(batch_size)
        if self.block == "whole":
            block = num_anchors if a_now is None else a_now
        elif self.block == "auto":
            block = None if b_now is None else _auto_block(b_now, self.budget)
        else:
            block = self.block
        if isinstance(block, int) and a_now is not None:
            return max(min(block, a_now), 1)
        if block is None:  # unknown batch size: the same rule, as a tensor
            b = ops.maximum(ops.cast(batch_size, "int32"), 1)
            entries, cap, rank, floor = self.budget
            block = ops.maximum(_power_of_two(entries // (b * b if rank == 2 else b)), floor)
            if cap is not None:
                block = ops.minimum(block, cap)
        return ops.maximum(ops.minimum(block, ops.cast(num_anchors, "int32")), 1)

    def class_limit(self, batch_size):
        """The most positives per anchor the class kernel takes (an int, or a tensor when
        `batch_size` is one), or None when it takes any number."""
        if self.merged_above is None:
            return None
        limit = batch_size // self.merged_above
        if self.max_positives is None:
            return limit
        if isinstance(limit, int):
            return min(limit, self.max_positives)
        return ops.minimum(limit, self.max_positives)

    def kernel_for(self, num_positives, batch_size):
        """The kernel that runs when no anchor has more than `num_positives` positives."""
        limit = self.class_limit(batch_size)
        if limit is not None and num_positives > limit:
            return "merged"
        if self.kernel == "fused" and self.slots_for(num_positives + 1) is None:
            return "search"
        return self.kernel

    def slots_for(self, class_size):
        """The slots the fused and compare kernels are compiled with for a largest class of
        `class_size` samples (an int), or None above the last of `SLOT_BUCKETS` (the
        search kernel instead of the fused one, the compare kernel's loop)."""
        return next((slots for slots in SLOT_BUCKETS if class_size <= slots), None)

    def describe(self, batch_size=None):
        """One line for tables and logs: the kernel, its fallback and the blocks."""
        text = self.kernel
        if self.kernel == "fused":
            text += f", search above {SLOT_BUCKETS[-1] - 1} positives"
        if self.merged_above is not None:
            bound = f"B/{self.merged_above}"
            if self.max_positives is not None:
                bound = f"min({bound}, {self.max_positives})"
            text += f", merged above {bound} positives"
        block = self.block_size(batch_size, batch_size) if batch_size is not None else None
        if not isinstance(block, int):
            return text + ", blocks from the batch size"
        return text if block >= batch_size else f"{text}, blocks of {block}"


def _power_of_two(x):
    """The largest power of two at most `x` (an int32 tensor), at least 1."""
    x = ops.maximum(x, 1)
    for shift in (1, 2, 4, 8, 16):  # every bit below the highest set
        x = ops.bitwise_or(x, ops.right_shift(x, shift))
    return x - ops.right_shift(x, 1)


def _auto_block(batch_size, budget):
    """The largest power of two whose block tensor stays within the budget, at least its
    floor (and 1)."""
    b = max(batch_size, 1)
    limit, cap, rank, floor = budget
    row = b**rank
    block = 1
    while block * 2 * row <= limit:
        block *= 2
    block = max(block, floor)
    return block if cap is None else min(block, cap)


def _count_blocks(mode):
    """`(Plan.count_entries, Plan.min_block)` for `mode` on this backend and device."""
    eager_torch = backend.backend() == "torch"
    if not (mode == "compiled" or eager_torch) or accelerator_visible():
        return COUNT_BLOCK_ENTRIES, 1
    if mode == "compiled":
        return CPU_XLA_BLOCK_ENTRIES, 1
    return TORCH_CPU_BLOCK_ENTRIES, TORCH_CPU_MIN_BLOCK


def plan_batch_all(batch_size, *, soft=False, method="auto", anchor_block=None,
                   row_sort="auto", mode=None):
    """The plan for a batch of `batch_size` samples (an int, or None when unknown).

    Args:
        batch_size: the static batch size, or None.
        soft: the soft margin (evaluated triple by triple: it has no counting shortcut).
        method: `"auto"` (every triple up to `DENSE_MAX_BATCH` samples, else counting
            for the hinge and triples in blocks of at most `DENSE_MAX_BATCH` anchors for
            the soft margin), `"dense"` (every triple) or `"sorted"` (counting; the hinge
            only).
        anchor_block: anchors per block, or None (the whole batch for `"dense"`, else
            chosen from the batch size).
        row_sort: `"auto"`, `"positives"` (the class kernel, never the whole-row sort) or
            `"merged"` (always the whole-row sort).
        mode: `"eager"`, `"graph"` or `"compiled"`; None: the current one.

    Returns:
        A `Plan`.
    """
    check_method(method)
    anchor_block = check_anchor_block(anchor_block)
    if row_sort not in ROW_SORTS:
        raise ValueError(f"row_sort must be one of {ROW_SORTS}; got {row_sort!r}.")
    if method == "sorted" and soft:
        raise ValueError(
            "method='sorted' computes the hinge (any distance) by counting sorted "
            f"distances, and the soft margin has no such shortcut; got soft={soft!r}. Use "
            "method='dense' (with anchor_block=... to bound its memory) or 'auto', which "
            f"evaluates the soft margin in anchor blocks above {DENSE_MAX_BATCH} samples."
        )
    mode = mode or execution_mode()
    small = batch_size is not None and batch_size <= DENSE_MAX_BATCH
    if method == "dense" or (method == "auto" and (small or soft)):
        block = anchor_block or ("whole" if method == "dense" or small else "auto")
        return Plan("triples", None, None, block, mode)
    block = anchor_block or "auto"
    blocks = _count_blocks(mode)
    if row_sort == "merged":
        return Plan("merged", None, None, block, mode, *blocks)
    kernel = CLASS_KERNEL[mode]
    if kernel == "fused" and not xla_compiles_in_graphs():
        kernel = "search"
    if row_sort == "positives":
        return Plan(kernel, None, None, block, mode, *blocks)
    cap = COMPARE_MAX_POSITIVES if kernel == "compare" else None
    return Plan(kernel, CLASS_KERNEL_DIVISOR, cap, block, mode, *blocks)
