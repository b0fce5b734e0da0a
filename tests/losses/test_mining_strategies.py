"""Batch-hard, semi-hard and soft-margin losses against the float64 loop reference."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import ALL_CASES, case_id
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tftriplet
from tftriplet.margins import softplus
from tftriplet_conformance import reference


def keras_loss(name, soft, distance, margin):
    return lambda labels, x: tftriplet.triplet_loss(
        labels, x, strategy=name, margin=margin, distance=distance, soft=soft
    )


# --- the reference itself: analytic gradient against finite differences -----------------


@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_reference_gradient_matches_finite_differences(draw_case, case):
    name, soft, distance = case
    rng = np.random.default_rng(1)
    labels, x = draw_case(rng, 7, 3, 3, 0.3, distance)
    ref = reference.triplet_loss(labels, x, name, 0.3, distance, soft)

    def value(e):
        return reference.triplet_loss(labels, e, name, 0.3, distance, soft)["loss"]

    numeric = reference.finite_difference_gradient(value, x)
    np.testing.assert_allclose(ref["gradient"], numeric, atol=1e-7)
    assert np.any(ref["gradient"] != 0)


# --- Keras (TensorFlow) against the reference ---------------------------------------------


@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float64_value_and_gradient_match_reference(draw_case, tf_value_and_gradient, case, seed):
    name, soft, distance = case
    rng = np.random.default_rng(100 + seed)
    labels, x = draw_case(rng, 10, 4, 3, 0.25, distance)
    value, grad = tf_value_and_gradient(
        lambda e: keras_loss(name, soft, distance, 0.25)(labels, e), x
    )
    ref = reference.triplet_loss(labels, x, name, 0.25, distance, soft)
    np.testing.assert_allclose(value, ref["loss"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad, ref["gradient"], rtol=1e-8, atol=1e-12)
    if seed:
        return
    # and against finite differences of the Keras loss itself
    numeric = reference.finite_difference_gradient(
        lambda e: float(keras_loss(name, soft, distance, 0.25)(labels, e)), x
    )
    np.testing.assert_allclose(grad, numeric, atol=1e-6)


@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_float32_matches_reference(draw_case, tf_value_and_gradient, case):
    name, soft, distance = case
    rng = np.random.default_rng(7)
    labels, x = draw_case(rng, 24, 8, 5, 0.2, distance)
    value, grad = tf_value_and_gradient(
        lambda e: keras_loss(name, soft, distance, 0.2)(labels, e), x.astype("float32")
    )
    ref = reference.triplet_loss(labels, x, name, 0.2, distance, soft)
    np.testing.assert_allclose(value, ref["loss"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, ref["gradient"], rtol=1e-3, atol=1e-5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.sampled_from(ALL_CASES),
    seed=st.integers(0, 2**32 - 1),
    batch_size=st.integers(1, 12),
    dim=st.integers(1, 5),
    num_classes=st.integers(1, 5),
    margin=st.sampled_from([0.0, 0.1, 0.5, 2.0]),
)
def test_property_matches_reference(
    clear_of_ties, tf_value_and_gradient, case, seed, batch_size, dim, num_classes, margin
):
    name, soft, distance = case
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=batch_size)
    x = rng.normal(size=(batch_size, dim))
    if not clear_of_ties(labels, x, margin, distance):
        return  # a tie makes the selection (and the subgradient) ambiguous
    value, grad = tf_value_and_gradient(
        lambda e: keras_loss(name, soft, distance, margin)(labels, e), x
    )
    ref = reference.triplet_loss(labels, x, name, margin, distance, soft)
    np.testing.assert_allclose(value, ref["loss"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grad, ref["gradient"], rtol=1e-7, atol=1e-10)


# --- hand-worked cases (numbers derived in the comments) ----------------------------------


def test_batch_hard_excludes_anchor_without_positive():
    # 1-D points 0, 2 (class 0) and 3 (class 1), margin 0.5. Anchor 0: hardest positive 2,
    # hardest negative 3 -> max(2 - 3 + 0.5, 0) = 0. Anchor 1: 2 vs 1 -> 1.5. Anchor 2 has
    # no positive: excluded, so the mean is 1.5 / 2 (counting it as zero would give 0.5).
    loss = tftriplet.batch_hard_triplet_loss([0, 0, 1], [[0.0], [2.0], [3.0]], margin=0.5)
    np.testing.assert_allclose(float(loss), 0.75, rtol=1e-6)


def test_semi_hard_hand_case():
    # Points 0, 1 (class 0) and 1.5, 3.2 (class 1), margin 1.
    # (0,1): d=1, negatives of 0 at 1.5, 3.2 -> closest farther 1.5 -> 1 - 1.5 + 1 = 0.5
    # (1,0): d=1, negatives of 1 at 0.5, 2.2 -> 2.2 -> max(1 - 2.2 + 1, 0) = 0
    # (2,3): d=1.7, negatives of 2 at 1.5, 0.5 -> none farther -> farthest 1.5 -> 1.2
    # (3,2): d=1.7, negatives of 3 at 3.2, 2.2 -> 2.2 -> 0.5.    Mean 2.2 / 4 = 0.55.
    x = [[0.0], [1.0], [1.5], [3.2]]
    loss = tftriplet.semi_hard_triplet_loss([0, 0, 1, 1], x, margin=1.0)
    np.testing.assert_allclose(float(loss), 0.55, rtol=1e-6)
    np.testing.assert_allclose(reference.semi_hard([0, 0, 1, 1], x, 1.0)["loss"], 0.55)


def test_semi_hard_excludes_anchor_without_negative():
    # Anchor class 2 has members but every other sample is a negative for it; class-0
    # anchors have negatives. One-class batch: no anchor has a negative -> 0.
    x = np.random.default_rng(3).normal(size=(4, 2))
    assert float(tftriplet.semi_hard_triplet_loss([5, 5, 5, 5], x)) == 0.0


@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
@pytest.mark.parametrize("labels", [[0, 0, 0, 0], [0, 1, 2, 3], [7], [1, 1], [1, 2]], ids=str)
def test_all_excluded_gives_zero_and_finite_gradient(tf_value_and_gradient, case, labels):
    name, soft, distance = case
    x = np.random.default_rng(4).normal(size=(len(labels), 3)).astype("float32")
    value, grad = tf_value_and_gradient(
        lambda e: keras_loss(name, soft, distance, 0.2)(labels, e), x
    )
    assert value == 0.0
    assert np.all(grad == 0.0)


@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_collapsed_batch_is_finite(tf_value_and_gradient, case):
    name, soft, distance = case
    labels = [0, 0, 1, 1, 2]
    x = np.ones((5, 3), dtype="float32")
    value, grad = tf_value_and_gradient(
        lambda e: keras_loss(name, soft, distance, 0.2)(labels, e), x
    )
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    # every distance is 0, so every term is max(0 - 0 + m, 0) = m, or softplus(0) = log 2
    np.testing.assert_allclose(value, np.log(2.0) if soft else 0.2, rtol=1e-6)


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c[2] == "cosine"], ids=case_id)
def test_cosine_zero_vectors(tf_value_and_gradient, case):
    name, soft, distance = case
    rng = np.random.default_rng(5)
    labels = np.array([0, 0, 1, 1, 2, 2])
    x = rng.normal(size=(6, 3))
    x[1] = 0.0
    x[4] = 0.0
    value, grad = tf_value_and_gradient(
        lambda e: keras_loss(name, soft, distance, 0.3)(labels, e), x
    )
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    ref = reference.triplet_loss(labels, x, name, 0.3, distance, soft)
    np.testing.assert_allclose(value, ref["loss"], rtol=1e-10)
    np.testing.assert_allclose(grad, ref["gradient"], rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(grad[[1, 4]], 0.0)


def test_softplus_is_stable_with_exact_gradient():
    x = tf.Variable([1e4, -1e4, 0.0, 30.0, -30.0], dtype="float32")
    with tf.GradientTape() as tape:
        y = softplus(x)
    grad = tape.gradient(y, x).numpy()
    expected = np.logaddexp(0.0, x.numpy().astype("float64"))
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6, atol=1e-30)
    sigmoid = [reference.sigmoid(v) for v in x.numpy().astype("float64")]
    np.testing.assert_allclose(grad, sigmoid, rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("name", ["batch_all", "batch_hard"])
def test_soft_margin_with_huge_distances(draw_case, tf_value_and_gradient, name):
    # Distances of order 1e4: softplus(+-1e4) must neither overflow nor lose its slope.
    rng = np.random.default_rng(6)
    labels, x = draw_case(rng, 8, 3, 2, 0.0, "euclidean", scale=1e4)
    value, grad = tf_value_and_gradient(
        lambda e: keras_loss(name, True, "euclidean", 0.0)(labels, e), x.astype("float32")
    )
    ref = reference.triplet_loss(labels, x, name, 0.0, "euclidean", True)
    assert ref["loss"] > 1e3  # really in the overflow range of a naive exp
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(value, ref["loss"], rtol=1e-5)
    np.testing.assert_allclose(grad, ref["gradient"], rtol=1e-3, atol=1e-7)


def test_soft_semi_hard_is_rejected():
    with pytest.raises(ValueError, match="soft"):
        tftriplet.SemiHardTripletLoss(soft=True)
    with pytest.raises(ValueError, match="soft"):
        tftriplet.triplet_loss([0, 0, 1], np.eye(3), strategy="semi_hard", soft=True)
    with pytest.raises(ValueError, match="strategy must be one of"):
        tftriplet.triplet_loss([0, 0, 1], np.eye(3), strategy="hardest")


def test_soft_batch_all_averages_over_all_valid_triples(draw_case):
    rng = np.random.default_rng(8)
    labels, x = draw_case(rng, 9, 3, 3, 0.2, "euclidean")
    ref = reference.batch_all(labels, x, 0.2, "euclidean", soft=True)
    d = reference.distance_matrix(x)
    terms = [
        np.logaddexp(0.0, d[i, j] - d[i, k])
        for i in range(9)
        for j in range(9)
        for k in range(9)
        if i != j and labels[i] == labels[j] and labels[i] != labels[k]
    ]
    np.testing.assert_allclose(ref["loss"], np.mean(terms), rtol=1e-10)
    loss, fraction = tftriplet.batch_all_triplet_loss(labels, x, 0.2, soft=True)
    np.testing.assert_allclose(float(loss), np.mean(terms), rtol=1e-10)
    np.testing.assert_allclose(float(fraction), ref["fraction_positive"], rtol=1e-10)


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c[0] != "batch_all"], ids=case_id)
def test_statistics_counts_match_reference(draw_case, case):
    name, soft, distance = case
    rng = np.random.default_rng(9)
    labels, x = draw_case(rng, 15, 3, 4, 0.4, distance)
    labels[0] = 99  # an anchor with no positive: not counted by batch-hard
    if name == "batch_hard":
        stats = tftriplet.batch_hard_triplet_statistics(
            labels, x, 0.4, distance=distance, soft=soft
        )
        count = "num_anchors"
    else:
        stats = tftriplet.semi_hard_triplet_statistics(labels, x, 0.4, distance=distance)
        count = "num_pairs"
    ref = reference.triplet_loss(labels, x, name, 0.4, distance, soft)
    assert float(stats[count]) == ref[count] > 0
    assert float(stats["num_positive"]) == ref["num_positive"]
    np.testing.assert_allclose(float(stats["loss"]), ref["loss"], rtol=1e-10)


def test_decision_values_see_ties(clear_of_ties):
    # Anchor 0's positive (1) and negative (2) are both at distance 1: a tie.
    x = [[0.0], [1.0], [-1.0], [5.0]]
    labels = [0, 0, 1, 1]
    for name in ("batch_all", "batch_hard", "semi_hard"):
        values = reference.decision_values(labels, x, name, margin=0.0)
        assert np.min(np.abs(values)) == 0.0
    assert not clear_of_ties(labels, x, 0.0, "euclidean")
    assert clear_of_ties(labels, [[0.0], [1.0], [-1.5], [5.0]], 0.3, "euclidean")
