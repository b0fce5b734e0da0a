"""tftriplet: the masked batch-all triplet loss for Keras, with a conformance suite."""

from tftriplet.distances import DISTANCES, pairwise_distances
from tftriplet.losses import (
    BatchAllTripletLoss,
    TripletLoss,
    batch_all_triplet_loss,
    batch_all_triplet_statistics,
)
from tftriplet.masks import anchor_negative_mask, anchor_positive_mask, triplet_mask
from tftriplet.metrics import (
    FractionPositiveTriplets,
    MeanNegativeDistance,
    MeanPositiveDistance,
    TripletDifficulty,
)
from tftriplet.mining_losses import (
    STRATEGIES,
    BatchHardTripletLoss,
    SemiHardTripletLoss,
    batch_hard_triplet_loss,
    batch_hard_triplet_statistics,
    semi_hard_triplet_loss,
    semi_hard_triplet_statistics,
    triplet_loss,
)

__version__ = "0.1.0"

__all__ = [
    "DISTANCES",
    "STRATEGIES",
    "BatchAllTripletLoss",
    "BatchHardTripletLoss",
    "FractionPositiveTriplets",
    "MeanNegativeDistance",
    "MeanPositiveDistance",
    "SemiHardTripletLoss",
    "TripletDifficulty",
    "TripletLoss",
    "anchor_negative_mask",
    "anchor_positive_mask",
    "batch_all_triplet_loss",
    "batch_all_triplet_statistics",
    "batch_hard_triplet_loss",
    "batch_hard_triplet_statistics",
    "pairwise_distances",
    "semi_hard_triplet_loss",
    "semi_hard_triplet_statistics",
    "triplet_loss",
    "triplet_mask",
]
