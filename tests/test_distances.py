"""Distances by name: values and gradients against the float64 reference; the squared flag."""

import numpy as np
import pytest
from helpers import DISTANCES, run_in_backend

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


_TORCH_IN_PLACE = """
import json
import numpy as np, torch
from keras import ops
from tftriplet import backend_ops
from tftriplet.distances import get_distance
rng = np.random.default_rng(0)
x = rng.normal(size=(6, 4)).astype("float32")
out = {}
for name in ("euclidean", "squared_euclidean"):
    distance = get_distance(name)
    tracked = torch.tensor(x, requires_grad=True)
    free = torch.tensor(x)
    points = [distance.prepare(e) for e in (tracked, free)]
    rows = [p.take(torch.tensor([3, 0, 5])) for p in points]
    # the generic path (autograd tracks the product) and the in-place one
    products = [distance.product(p, r) for p, r in zip(points, rows)]
    # the two products come from different kernels (oneDNN's outside autograd on a CPU,
    # tftriplet.onednn): the finishes are compared bit for bit on the same product
    same = products[1].clone().requires_grad_()
    d_tracked, d_free = (distance.finish(q, p, r) for q, p, r in zip(products, points, rows))
    d_tracked.sum().backward()
    d_generic = distance.finish(same, points[0], rows[0])
    out[name] = {"equal": torch.equal(d_generic.detach(), d_free),
                 "in_place": d_free.data_ptr() == products[1].data_ptr(),
                 "values": d_free.tolist(), "tracked_values": d_tracked.tolist(),
                 "tracked_in_place": d_generic.data_ptr() == same.data_ptr(),
                 "has_gradient": tracked.grad is not None}
w = torch.tensor(rng.normal(size=(3, 6)).astype("float32"))
d = torch.tensor(rng.random((3, 6)).astype("float32")); d[0, 2] = 0.0
expected = backend_ops.divide_or_zero(w.clone(), d)
got = backend_ops.divide_or_zero(w, d, overwrite=True)
index = torch.tensor([[0, 1], [2, 5]], dtype=torch.int32)
block = torch.zeros(3, 6)
scattered = ops.scatter_update(block, index, torch.tensor([4.0, 7.0]))
into = backend_ops.scatter_into(block, index, torch.tensor([4.0, 7.0]))
out["divide"] = {"equal": torch.equal(expected, got), "in_place": got.data_ptr() == w.data_ptr(),
                 "zero": float(got[0, 2])}
out["scatter"] = {"equal": torch.equal(scattered, into), "in_place": into is block}
print(json.dumps(out))
"""


def test_torch_in_place_paths_equal_the_generic_ones():
    """Under PyTorch outside autograd the engine's distances, slopes and slot writes reuse
    their operand (`backend_ops`): the same values as the generic path, which autograd
    still takes."""
    pytest.importorskip("torch")
    out = run_in_backend("torch", _TORCH_IN_PLACE, {})
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32").astype("float64")
    sq = ((x[[3, 0, 5], None, :] - x[None, :, :]) ** 2).sum(-1)
    for name, expected in (("euclidean", np.sqrt(sq)), ("squared_euclidean", sq)):
        case = out[name]
        assert case["equal"] and case["in_place"] and case["has_gradient"], (name, case)
        assert not case["tracked_in_place"], name
        np.testing.assert_allclose(case["values"], expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(case["tracked_values"], expected, rtol=1e-5, atol=1e-5)
    assert out["divide"] == {"equal": True, "in_place": True, "zero": 0.0}
    assert out["scatter"] == {"equal": True, "in_place": True}
