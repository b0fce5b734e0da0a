"""The shared Keras plumbing of every triplet loss (tftriplet/losses/base.py)."""

import keras
import numpy as np
import pytest

import tftriplet
from tftriplet_conformance import reference

LOSSES = [
    tftriplet.BatchAllTripletLoss,
    tftriplet.BatchHardTripletLoss,
    tftriplet.SemiHardTripletLoss,
]
COUNTS = {
    "batch_all": ("num_positive", "num_valid"),
    "batch_hard": ("num_anchors", "num_positive"),
    "semi_hard": ("num_pairs", "num_positive"),
}


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
def test_call_is_call_with_the_dtype_cast(cls):
    """Keras' Loss.call path gives what __call__ gives, in the loss's dtype."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 4)
    x = rng.normal(size=(12, 5)).astype("float32")
    loss = cls(margin=0.3, dtype="float64")
    called, direct = loss(labels, x), loss.call(labels, x)
    assert keras.backend.standardize_dtype(called.dtype) == "float64"
    assert keras.backend.standardize_dtype(direct.dtype) == "float64"
    assert float(called) == float(direct) > 0


@pytest.mark.parametrize("strategy", sorted(COUNTS))
def test_counts_keep_float64(strategy):
    """In a float64 run every strategy's counts are float64, as exact as the reference."""
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 5)
    x = rng.normal(size=(20, 3))
    stats = tftriplet.triplet_statistics(labels, x, strategy, 0.4)
    ref = reference.triplet_loss(labels, x, strategy, 0.4)
    for key in COUNTS[strategy]:
        assert keras.backend.standardize_dtype(stats[key].dtype) == "float64", key
        assert float(stats[key]) == ref[key], key


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
def test_options_after_margin_are_keywords(cls):
    with pytest.raises(TypeError):
        cls(0.2, "euclidean")
    loss = cls(0.5, distance="cosine", name="mine")
    assert (loss.margin, loss.distance, loss.name) == (0.5, "cosine", "mine")
    assert cls.from_config(loss.get_config()).get_config() == loss.get_config()
