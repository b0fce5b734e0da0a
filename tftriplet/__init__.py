"""tftriplet: the masked batch-all triplet loss for Keras, with a conformance suite."""

from tftriplet.distances import pairwise_distances
from tftriplet.losses import (
    BatchAllTripletLoss,
    TripletLoss,
    batch_all_triplet_loss,
    batch_all_triplet_statistics,
)
from tftriplet.masks import anchor_negative_mask, anchor_positive_mask, triplet_mask
from tftriplet.metrics import FractionPositiveTriplets

__version__ = "0.1.0"

__all__ = [
    "BatchAllTripletLoss",
    "FractionPositiveTriplets",
    "TripletLoss",
    "anchor_negative_mask",
    "anchor_positive_mask",
    "batch_all_triplet_loss",
    "batch_all_triplet_statistics",
    "pairwise_distances",
    "triplet_mask",
]
