"""The masked batch-all triplet loss against the float64 reference and finite differences."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import tftriplet
from tftriplet.distances import resolve_distance
from tftriplet_conformance import reference


def tf_loss_and_grad(labels, embeddings, margin=0.2, squared=False, dtype="float64"):
    x = tf.constant(np.asarray(embeddings), dtype=dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        stats = tftriplet.batch_all_triplet_statistics(labels, x, margin, squared)
    grad = tape.gradient(stats["loss"], x)
    out = {k: float(v) for k, v in stats.items()}
    out["gradient"] = grad.numpy()
    return out


def assert_matches_reference(labels, embeddings, margin, squared, dtype, rtol, atol):
    ref = reference.batch_all(labels, embeddings, margin, resolve_distance(squared=squared))
    got = tf_loss_and_grad(labels, embeddings, margin, squared, dtype)
    assert got["num_valid"] == ref["num_valid"]
    assert got["num_positive"] == ref["num_positive"]
    np.testing.assert_allclose(got["loss"], ref["loss"], rtol=rtol, atol=atol)
    np.testing.assert_allclose(
        got["fraction_positive"], ref["fraction_positive"], rtol=rtol, atol=atol
    )
    np.testing.assert_allclose(got["gradient"], ref["gradient"], rtol=rtol, atol=atol)


# --- pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize("squared", [False, True])
def test_pairwise_distances_match_reference(squared):
    rng = np.random.default_rng(0)
    e = rng.normal(size=(17, 9))
    got = tftriplet.pairwise_distances(tf.constant(e), squared=squared).numpy()
    np.testing.assert_allclose(
        got, reference.distance_matrix(e, resolve_distance(squared=squared)), atol=1e-12
    )
    assert np.all(np.diag(got) == 0.0)


def test_triplet_mask_matches_reference_loops():
    labels = np.array([3, 1, 3, 3, 7, 1, 0, 3])
    got = tftriplet.triplet_mask(tf.constant(labels)).numpy()
    np.testing.assert_array_equal(got, reference.triplet_mask(labels))


# --- the seed program's case ------------------------------------------------------------


def test_seed_case_full_precision(seed_case):
    labels, embeddings = seed_case
    ref = reference.batch_all(labels, embeddings, 0.2)
    # Issue 2 states these (the seed program's case, 115 of 172 valid triples positive).
    assert (ref["num_positive"], ref["num_valid"]) == (115, 172)
    np.testing.assert_allclose(ref["loss"], 0.270146489329, atol=5e-13)
    assert f"{ref['loss']:f} {ref['fraction_positive']:f}" == "0.270146 0.668605"
    assert_matches_reference(labels, embeddings, 0.2, False, "float64", 1e-12, 1e-12)
    assert_matches_reference(labels, embeddings, 0.2, False, "float32", 2e-5, 2e-6)


def test_seed_case_keras_loss_prints_seed_line(seed_case):
    labels, embeddings = seed_case
    loss = tftriplet.BatchAllTripletLoss(margin=0.2, dtype="float64")(
        np.array(labels), np.array(embeddings)
    )
    _, fraction = tftriplet.batch_all_triplet_loss(labels, np.array(embeddings), 0.2)
    line = f"The triplet loss is {float(loss):f} with positives {float(fraction):f} "
    assert line == "The triplet loss is 0.270146 with positives 0.668605 "


# --- random cases -------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    batch_size=st.integers(2, 24),
    dim=st.integers(1, 16),
    num_classes=st.integers(1, 6),
    squared=st.booleans(),
    margin=st.sampled_from([0.0, 0.2, 1.0]),
    seed=st.integers(0, 2**31 - 1),
)
# Found by hypothesis: near-duplicate rows in 1-D at margin 0 (float32 Gram precision).
@example(batch_size=5, dim=1, num_classes=2, squared=False, margin=0.0, seed=21)
def test_random_cases_match_reference(
    clear_of_ties, random_case, batch_size, dim, num_classes, squared, margin, seed
):
    rng = np.random.default_rng(seed)
    labels, embeddings = random_case(rng, batch_size, dim, num_classes)
    # An exact tie (hinge 0, e.g. symmetric points in 1-D at margin 0) is decided by the last
    # bit of each implementation's distances; counts are only comparable away from ties.
    assume(
        clear_of_ties(
            labels, embeddings, margin, resolve_distance(squared=squared), "batch_all", tol=1e-9
        )
    )
    assert_matches_reference(labels, embeddings, margin, squared, "float64", 1e-9, 1e-10)
    # float32 distances come from |a|^2 - 2ab + |b|^2, which loses relative precision for
    # near-duplicate rows (error ~ eps * |e|^2 / d^2); compare float32 on well-separated rows.
    d = reference.distance_matrix(embeddings)
    off_diagonal = d[~np.eye(batch_size, dtype=bool)]
    separated = off_diagonal.size == 0 or off_diagonal.min() > 0.05 * np.abs(embeddings).max()
    if separated and clear_of_ties(
        labels, embeddings, margin, resolve_distance(squared=squared), "batch_all", tol=1e-4
    ):
        assert_matches_reference(labels, embeddings, margin, squared, "float32", 1e-4, 1e-5)


@pytest.mark.parametrize("squared", [False, True])
def test_gradient_matches_finite_differences(clear_of_ties, random_case, squared):
    rng = np.random.default_rng(7)
    labels, embeddings = random_case(rng, 9, 4, 3)
    assert clear_of_ties(
        labels, embeddings, 0.3, resolve_distance(squared=squared), "batch_all", tol=1e-3
    )

    def loss(e):
        return reference.batch_all(labels, e, 0.3, resolve_distance(squared=squared))["loss"]

    numeric = reference.finite_difference_gradient(loss, embeddings, eps=1e-6)
    ref = reference.batch_all(labels, embeddings, 0.3, resolve_distance(squared=squared))[
        "gradient"
    ]
    got = tf_loss_and_grad(labels, embeddings, 0.3, squared)["gradient"]
    np.testing.assert_allclose(ref, numeric, atol=1e-7)
    np.testing.assert_allclose(got, numeric, atol=1e-7)
    assert np.abs(numeric).max() > 1e-3  # the case exercises the gradient


# --- numerics -----------------------------------------------------------------------------


EDGE_CASES = {
    "identical_pair": ([0, 0, 1, 1], [[1.0, 2.0], [1.0, 2.0], [0.0, 0.0], [3.0, 1.0]]),
    "collapsed_batch": ([0, 1, 0, 1, 2], [[0.5, -0.5, 2.0]] * 5),
    "all_zero": ([0, 1, 0, 1], [[0.0, 0.0]] * 4),
    "batch_of_one": ([4], [[1.0, 2.0, 3.0]]),
    "batch_of_two_same": ([1, 1], [[1.0], [2.0]]),
    "batch_of_two_different": ([1, 2], [[1.0], [2.0]]),
    "one_class": ([5, 5, 5, 5], [[0.0], [1.0], [2.0], [4.0]]),
    "all_distinct": ([0, 1, 2, 3], [[0.0], [1.0], [2.0], [4.0]]),
}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_edge_cases_finite_and_correct(name, squared, dtype):
    labels, embeddings = EDGE_CASES[name]
    got = tf_loss_and_grad(labels, embeddings, 0.2, squared, dtype)
    assert np.isfinite(got["loss"]) and np.isfinite(got["fraction_positive"])
    assert np.all(np.isfinite(got["gradient"]))
    ref = reference.batch_all(labels, embeddings, 0.2, resolve_distance(squared=squared))
    np.testing.assert_allclose(got["loss"], ref["loss"], atol=1e-6)
    np.testing.assert_allclose(got["fraction_positive"], ref["fraction_positive"], atol=1e-6)
    np.testing.assert_allclose(got["gradient"], ref["gradient"], atol=1e-5)


def test_no_valid_or_no_positive_triple_gives_zero():
    # All distinct labels: no valid triple.
    loss, frac = tftriplet.batch_all_triplet_loss([0, 1, 2], [[0.0], [1.0], [2.0]])
    assert float(loss) == 0.0 and float(frac) == 0.0
    # Valid triples, all easy: no positive triple.
    loss, frac = tftriplet.batch_all_triplet_loss([0, 0, 1], [[0.0], [0.1], [10.0]])
    assert float(loss) == 0.0 and float(frac) == 0.0


# --- execution modes ----------------------------------------------------------------------


def test_eager_graph_and_xla_agree(random_case):
    rng = np.random.default_rng(3)
    labels, embeddings = random_case(rng, 16, 8, 4)
    labels = tf.constant(labels)
    x = tf.constant(embeddings, tf.float32)
    loss_fn = tftriplet.BatchAllTripletLoss(margin=0.5)

    def step(y, e):
        with tf.GradientTape() as tape:
            tape.watch(e)
            value = loss_fn(y, e)
        return value, tape.gradient(value, e)

    eager = step(labels, x)
    graph = tf.function(step)(labels, x)
    xla = tf.function(step, jit_compile=True)(labels, x)
    for other in (graph, xla):
        np.testing.assert_allclose(other[0].numpy(), eager[0].numpy(), rtol=1e-6)
        np.testing.assert_allclose(other[1].numpy(), eager[1].numpy(), rtol=1e-5, atol=1e-7)
    ref = reference.batch_all(labels.numpy(), embeddings, 0.5)
    np.testing.assert_allclose(eager[0].numpy(), ref["loss"], rtol=1e-5)


def test_unknown_batch_size_in_graph(random_case):
    fn = tf.function(
        lambda y, e: tftriplet.batch_all_triplet_loss(y, e)[0],
        input_signature=[
            tf.TensorSpec([None], tf.int64),
            tf.TensorSpec([None, 3], tf.float32),
        ],
    )
    rng = np.random.default_rng(5)
    labels, embeddings = random_case(rng, 11, 3, 3)
    ref = reference.batch_all(labels, embeddings)
    np.testing.assert_allclose(fn(labels, embeddings.astype("float32")), ref["loss"], rtol=1e-5)
