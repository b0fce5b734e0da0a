"""A cross-batch memory: each batch mined against the most recent samples of earlier ones.

`tftriplet.BatchAllTripletLoss`, `tftriplet.BatchHardTripletLoss` and
`tftriplet.SemiHardTripletLoss` take `memory_size=N`: the batch's anchors then find their
positives and negatives in the batch and in the `N` most recent samples seen before it
(docs/memory.md). The state lives in a `CrossBatchMemory` (`tftriplet.memory.store`);
`attach_memory` (`tftriplet.memory.training`) makes it part of a model's state for `fit`.

Reference:
    Wang, Zhang, Huang, Scott, "Cross-Batch Memory for Embedding Learning", CVPR 2020,
    https://arxiv.org/abs/1912.06798
"""

from tftriplet.memory.store import CrossBatchMemory, check_memory_size, check_warmup
from tftriplet.memory.training import attach_memory, in_training

__all__ = [
    "CrossBatchMemory",
    "attach_memory",
    "check_memory_size",
    "check_warmup",
    "in_training",
]
