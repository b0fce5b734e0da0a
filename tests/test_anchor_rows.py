"""Mining some anchors against the whole batch: distance rows, masks and per-anchor terms.

``anchor_distances`` against the float64 reference's rows (values and chain-rule
gradients) and against ``pairwise_distances``; ``AnchorRows`` built from rows against the
rows of the square one; the batch-hard and semi-hard terms of some anchors against the same
anchors' terms of the whole batch.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tftriplet
from tftriplet import DISTANCES
from tftriplet.distances import anchor_distances
from tftriplet.losses.batch_hard import batch_hard_terms
from tftriplet.losses.semi_hard import semi_hard_terms
from tftriplet.mining import AnchorRows, anchor_rows
from tftriplet_conformance import reference

#: Unsorted, one repeated: rows are taken as asked.
ANCHORS = np.array([4, 0, 8, 4], dtype=np.int32)


def tf_value_and_gradient(fn, embeddings):
    """``fn(embeddings)`` and its gradient with TensorFlow, as NumPy."""
    x = tf.Variable(embeddings)
    with tf.GradientTape() as tape:
        value = fn(x)
    return value.numpy(), tape.gradient(value, x).numpy()


def draw_case(rng, batch_size, dim, num_classes, margin, distance):
    """Random labels and float64 embeddings with every batch-hard and semi-hard decision
    (the reference's decision values) at least 1e-4 away from a tie."""
    for _ in range(100):
        labels = rng.integers(0, num_classes, size=batch_size).astype("int64")
        x = rng.normal(size=(batch_size, dim))
        values = reference.decision_values(labels, x, "batch_hard", margin, distance)
        if values.size == 0 or np.min(np.abs(values)) >= 1e-4:
            return labels, x
    raise AssertionError("could not draw a case clear of ties")


def scattered(anchor_index, weights, batch_size):
    """``coeff[i, j]``: the weights of rows ``anchor_index`` placed on the square matrix."""
    coeff = np.zeros((batch_size, batch_size))
    np.add.at(coeff, anchor_index, weights)
    return coeff


@pytest.mark.parametrize("distance", DISTANCES)
def test_rows_and_gradient_match_the_reference(distance):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 4))
    weights = rng.normal(size=(len(ANCHORS), 9))
    rows = anchor_distances(x, ANCHORS, distance=distance)
    expected = reference.distance_matrix(x, distance)[ANCHORS]
    np.testing.assert_allclose(rows, expected, rtol=1e-10, atol=1e-12)

    _, grad = tf_value_and_gradient(
        lambda e: keras.ops.sum(anchor_distances(e, ANCHORS, distance=distance) * weights), x
    )
    coeff = scattered(ANCHORS, weights, 9)
    np.testing.assert_allclose(
        grad, reference.distance_chain_rule(x, coeff, distance), rtol=1e-8, atol=1e-12
    )


@pytest.mark.parametrize("distance", DISTANCES)
def test_rows_of_float32_pairwise_distances(distance):
    x = np.random.default_rng(1).normal(size=(12, 5)).astype("float32")
    full = keras.ops.convert_to_numpy(tftriplet.pairwise_distances(x, distance=distance))
    rows = keras.ops.convert_to_numpy(anchor_distances(x, ANCHORS, distance=distance))
    assert rows.dtype == np.float32 and rows.shape == (len(ANCHORS), 12)
    np.testing.assert_allclose(rows, full[ANCHORS], rtol=1e-5, atol=1e-5)
    # squared=True is squared_euclidean, as for pairwise_distances
    np.testing.assert_array_equal(
        anchor_distances(x, ANCHORS, squared=True),
        anchor_distances(x, ANCHORS, distance="squared_euclidean"),
    )


@pytest.mark.parametrize("distance", DISTANCES)
def test_zero_distances_have_a_zero_gradient(distance):
    """Duplicated rows and a zero row: the anchor's own entry is exactly 0, nothing is NaN,
    and the gradient is the reference's (0 through a zero Euclidean distance and through a
    cosine distance with a zero row)."""
    x = np.array(
        [[1.0, 2.0, 0.5], [1.0, 2.0, 0.5], [0.0, 0.0, 0.0], [-1.0, 0.3, 2.0], [1.0, 2.0, 0.5]]
    )
    anchors = np.array([0, 2, 1, 3], dtype=np.int32)
    weights = np.random.default_rng(2).normal(size=(4, 5))
    rows = keras.ops.convert_to_numpy(anchor_distances(x, anchors, distance=distance))
    assert np.all(rows[np.arange(4), anchors] == 0.0)
    np.testing.assert_allclose(rows, reference.distance_matrix(x, distance)[anchors], atol=1e-7)
    _, grad = tf_value_and_gradient(
        lambda e: keras.ops.sum(anchor_distances(e, anchors, distance=distance) * weights), x
    )
    assert np.all(np.isfinite(grad))
    coeff = scattered(anchors, weights, 5)
    np.testing.assert_allclose(grad, reference.distance_chain_rule(x, coeff, distance), atol=1e-6)


def test_no_anchors():
    x = np.random.default_rng(3).normal(size=(6, 3)).astype("float32")
    none = np.zeros((0,), dtype=np.int32)
    assert tuple(anchor_distances(x, none).shape) == (0, 6)
    rows = AnchorRows(np.arange(6) % 2, anchor_distances(x, none), none)
    assert tuple(rows.sorted_negatives.shape) == (0, 6)
    for terms in (batch_hard_terms, semi_hard_terms):
        args = (0.2, "euclidean", False) if terms is batch_hard_terms else (0.2, "euclidean")
        parts = terms(np.arange(6) % 2, x, *args, anchor_index=none)
        assert all(keras.ops.convert_to_numpy(p).size == 0 for p in parts)


def test_positives_exclude_the_anchor_not_the_diagonal():
    """Row a of the masks is anchor ``anchor_index[a]``'s: its own column is not a positive,
    the column that sits on the diagonal of the rows (column a) may be."""
    labels = np.array([0, 0, 1, 0, 1])
    anchors = np.array([3, 0, 2], dtype=np.int32)
    x = np.random.default_rng(4).normal(size=(5, 2))
    rows = anchor_rows(labels, x, "euclidean", anchors)
    square = anchor_rows(labels, x, "euclidean")
    positive = keras.ops.convert_to_numpy(rows.positive)
    np.testing.assert_array_equal(positive[0], [True, True, False, False, False])
    np.testing.assert_array_equal(positive, keras.ops.convert_to_numpy(square.positive)[anchors])
    for name in ("negative", "num_negatives", "sorted_negatives", "distances"):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(getattr(rows, name)),
            keras.ops.convert_to_numpy(getattr(square, name))[anchors],
            rtol=1e-12,
        )


CASES = [("batch_hard", soft, d) for soft in (False, True) for d in DISTANCES] + [
    ("semi_hard", False, d) for d in DISTANCES
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_terms_of_some_anchors_are_rows_of_the_terms_of_all(case):
    name, soft, distance = case
    rng = np.random.default_rng(5)
    labels, x = draw_case(rng, 14, 3, 4, 0.2, distance)
    anchors = np.array([13, 2, 7, 0, 5], dtype=np.int32)

    def terms(anchor_index):
        if name == "batch_hard":
            return batch_hard_terms(labels, x, 0.2, distance, soft, anchor_index)
        return semi_hard_terms(labels, x, 0.2, distance, anchor_index)

    for some, every in zip(terms(anchors), terms(None), strict=True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(some),
            keras.ops.convert_to_numpy(every)[anchors],
            rtol=1e-10,
            atol=1e-12,
        )
