"""Distances by name: values and gradients against the float64 reference; the squared flag."""

import numpy as np
import pytest
from helpers import DISTANCES

import tftriplet
from tftriplet.distances import resolve_distance
from tftriplet_conformance import reference


@pytest.mark.parametrize("distance", DISTANCES)
def test_values_and_gradient_match_reference(tf_value_and_gradient, distance):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 4))
    weights = rng.normal(size=(9, 9))
    d = tftriplet.pairwise_distances(x, distance=distance)
    np.testing.assert_allclose(d, reference.distance_matrix(x, distance), rtol=1e-10, atol=1e-12)

    import keras

    value, grad = tf_value_and_gradient(
        lambda e: keras.ops.sum(tftriplet.pairwise_distances(e, distance=distance) * weights), x
    )
    np.testing.assert_allclose(
        grad, reference.distance_chain_rule(x, weights, distance), rtol=1e-8, atol=1e-12
    )
    numeric = reference.finite_difference_gradient(
        lambda e: float(np.sum(reference.distance_matrix(e, distance) * weights)), x
    )
    np.testing.assert_allclose(grad, numeric, atol=1e-6)


def test_cosine_zero_vector_value_and_gradient(tf_value_and_gradient):
    import keras

    x = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.5], [-1.0, 0.3, 2.0], [0.0, 0.0, 0.0]])
    weights = np.random.default_rng(1).normal(size=(4, 4))
    d = np.asarray(tftriplet.pairwise_distances(x, distance="cosine"))
    assert np.all(np.isfinite(d))
    np.testing.assert_array_equal(np.diag(d), 0.0)
    # A zero row is at distance 1 from every other row (cosine similarity taken as 0).
    np.testing.assert_allclose(d[0, 1:], 1.0)
    np.testing.assert_allclose(d[:, 3][:3], 1.0)
    np.testing.assert_allclose(d, reference.distance_matrix(x, "cosine"), atol=1e-12)
    _, grad = tf_value_and_gradient(
        lambda e: keras.ops.sum(tftriplet.pairwise_distances(e, distance="cosine") * weights), x
    )
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[[0, 3]], 0.0)
    np.testing.assert_allclose(
        grad, reference.distance_chain_rule(x, weights, "cosine"), rtol=1e-8, atol=1e-12
    )


def test_cosine_is_scale_invariant_and_bounded():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 5)).astype("float32")
    d = np.asarray(tftriplet.pairwise_distances(x, distance="cosine"))
    scaled = np.asarray(
        tftriplet.pairwise_distances(x * rng.uniform(0.1, 10, (6, 1)), distance="cosine")
    )
    np.testing.assert_allclose(d, scaled, atol=1e-6)
    opposite = np.asarray(tftriplet.pairwise_distances(np.stack([x[0], -x[0]]), distance="cosine"))
    np.testing.assert_allclose(opposite[0, 1], 2.0, rtol=1e-6)


def test_resolve_distance():
    assert resolve_distance() == "euclidean"
    assert resolve_distance(squared=True) == "squared_euclidean"
    assert resolve_distance("squared_euclidean", squared=True) == "squared_euclidean"
    assert resolve_distance("cosine") == "cosine"
    with pytest.raises(ValueError, match="squared=True conflicts with distance='cosine'"):
        resolve_distance("cosine", squared=True)
    with pytest.raises(ValueError, match="squared=True conflicts with distance='euclidean'"):
        resolve_distance("euclidean", squared=True)
    with pytest.raises(ValueError, match=r"distance must be one of .* got 'manhattan'"):
        resolve_distance("manhattan")


def test_core_squared_flag_keeps_working():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 10)
    x = rng.normal(size=(10, 4))
    old = tftriplet.BatchAllTripletLoss(margin=0.3, squared=True)
    new = tftriplet.BatchAllTripletLoss(margin=0.3, distance="squared_euclidean")
    assert old.distance == "squared_euclidean" and old.squared
    assert old.get_config() == {**new.get_config(), "name": old.name}
    np.testing.assert_allclose(float(old(labels, x)), float(new(labels, x)))
    ref = reference.batch_all(labels, x, 0.3, "squared_euclidean")["loss"]
    np.testing.assert_allclose(float(old(labels, x)), ref, rtol=1e-6)  # float32 result
    np.testing.assert_allclose(
        tftriplet.pairwise_distances(x, squared=True),
        reference.distance_matrix(x, "squared_euclidean"),
        rtol=1e-10,
        atol=1e-12,
    )
    metric = tftriplet.FractionPositiveTriplets(squared=True)
    assert metric.distance == "squared_euclidean"


@pytest.mark.parametrize(
    "make",
    [
        lambda: tftriplet.BatchAllTripletLoss(squared=True, distance="cosine"),
        lambda: tftriplet.BatchHardTripletLoss(squared=True, distance="euclidean"),
        lambda: tftriplet.SemiHardTripletLoss(distance="hamming"),
        lambda: tftriplet.FractionPositiveTriplets(squared=True, distance="cosine"),
        lambda: tftriplet.TripletDifficulty(distance="dot"),
        lambda: tftriplet.batch_hard_triplet_loss(
            [0, 0, 1], np.eye(3), squared=True, distance="cosine"
        ),
    ],
)
def test_conflicting_or_unknown_distance_raises(make):
    with pytest.raises(ValueError, match="distance"):
        make()
