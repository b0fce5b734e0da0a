"""tftriplet: triplet losses for Keras 3 (TensorFlow, JAX, PyTorch), with a conformance suite.

The public API: the losses (function and `keras.losses.Loss` per strategy), the metrics,
distances and masks, the P x K samplers (a `keras.utils.PyDataset` and a `tf.data`
pipeline), the retrieval metrics and a callback that logs them during training, and the
cross-batch memory the losses take (`memory_size`, `attach_memory`).
`import tftriplet` loads nothing beyond Keras and runs no command-line code: the command
line (`tftriplet_cli`) and the conformance suite (`tftriplet_conformance`) are packages of
their own, which import this one.
"""

from tftriplet.callbacks import RetrievalEvaluation
from tftriplet.distances import DISTANCES, pairwise_distances
from tftriplet.losses import (
    STRATEGIES,
    BatchAllTripletLoss,
    BatchHardTripletLoss,
    SemiHardTripletLoss,
    TripletLoss,
    batch_all_triplet_loss,
    batch_all_triplet_statistics,
    batch_hard_triplet_loss,
    batch_hard_triplet_statistics,
    semi_hard_triplet_loss,
    semi_hard_triplet_statistics,
    triplet_loss,
    triplet_statistics,
)
from tftriplet.masks import anchor_negative_mask, anchor_positive_mask, triplet_mask
from tftriplet.memory import CrossBatchMemory, attach_memory
from tftriplet.metrics import (
    FractionPositiveTriplets,
    MeanNegativeDistance,
    MeanPositiveDistance,
    TripletDifficulty,
)
from tftriplet.resume import BackupAndRestore
from tftriplet.retrieval import map_at_r, recall_at_k, retrieval_metrics
from tftriplet.samplers import PKBatches, pk_dataset

__version__ = "0.1.0"

__all__ = [
    "DISTANCES",
    "STRATEGIES",
    "BackupAndRestore",
    "BatchAllTripletLoss",
    "BatchHardTripletLoss",
    "CrossBatchMemory",
    "FractionPositiveTriplets",
    "MeanNegativeDistance",
    "MeanPositiveDistance",
    "PKBatches",
    "RetrievalEvaluation",
    "SemiHardTripletLoss",
    "TripletDifficulty",
    "TripletLoss",
    "anchor_negative_mask",
    "anchor_positive_mask",
    "attach_memory",
    "batch_all_triplet_loss",
    "batch_all_triplet_statistics",
    "batch_hard_triplet_loss",
    "batch_hard_triplet_statistics",
    "map_at_r",
    "pairwise_distances",
    "pk_dataset",
    "recall_at_k",
    "retrieval_metrics",
    "semi_hard_triplet_loss",
    "semi_hard_triplet_statistics",
    "triplet_loss",
    "triplet_mask",
    "triplet_statistics",
]
