"""The triplet losses: one module per strategy, each with its function and `Loss` class."""

from tftriplet.losses.base import TripletLoss
from tftriplet.losses.batch_all import (
    BatchAllTripletLoss,
    batch_all_triplet_loss,
    batch_all_triplet_statistics,
)
from tftriplet.losses.batch_hard import (
    BatchHardTripletLoss,
    batch_hard_triplet_loss,
    batch_hard_triplet_statistics,
)
from tftriplet.losses.by_name import STRATEGIES, triplet_loss, triplet_statistics
from tftriplet.losses.semi_hard import (
    SemiHardTripletLoss,
    semi_hard_triplet_loss,
    semi_hard_triplet_statistics,
)

__all__ = [
    "STRATEGIES",
    "BatchAllTripletLoss",
    "BatchHardTripletLoss",
    "SemiHardTripletLoss",
    "TripletLoss",
    "batch_all_triplet_loss",
    "batch_all_triplet_statistics",
    "batch_hard_triplet_loss",
    "batch_hard_triplet_statistics",
    "semi_hard_triplet_loss",
    "semi_hard_triplet_statistics",
    "triplet_loss",
    "triplet_statistics",
]
