"""TripletDifficulty and the mean distance metrics against float64 loop counts."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import DISTANCES

import tftriplet
from tftriplet.searches import row_searchsorted
from tftriplet_conformance import reference


def fractions(counts):
    total = counts["easy"] + counts["semi_hard"] + counts["hard"]
    return {k: counts[k] / total for k in ("easy", "semi_hard", "hard")}


def as_floats(result):
    return {k: float(v) for k, v in result.items()}


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("margin", [0.0, 0.2, 1.0])
def test_accumulates_counts_over_batches(draw_case, distance, margin):
    rng = np.random.default_rng(0)
    metric = tftriplet.TripletDifficulty(margin=margin, distance=distance)
    totals = {"easy": 0, "semi_hard": 0, "hard": 0, "valid": 0}
    per_batch = []
    for batch_size in (6, 20, 11):  # different sizes: different numbers of triples
        labels, x = draw_case(rng, batch_size, 3, 3, margin, distance)
        metric.update_state(labels, x.astype("float32"))
        counts = reference.triplet_difficulty(labels, x, margin, distance)
        assert counts["easy"] + counts["semi_hard"] + counts["hard"] == counts["valid"]
        per_batch.append(fractions(counts))
        totals = {k: totals[k] + counts[k] for k in totals}
    result = as_floats(metric.result())
    assert set(result) == {"easy", "semi_hard", "hard"}
    expected = fractions(totals)
    for kind in expected:
        np.testing.assert_allclose(result[kind], expected[kind], rtol=1e-6, atol=1e-7)
    # A mean of per-batch fractions is a different number: the test can tell them apart.
    mean_of_fractions = np.mean([b["hard"] for b in per_batch])
    assert abs(mean_of_fractions - expected["hard"]) > 1e-3
    metric.reset_state()
    assert as_floats(metric.result()) == {"easy": 0.0, "semi_hard": 0.0, "hard": 0.0}


def test_hand_case():
    # Points 0, 1 (class 0) and 1.5, 3.2 (class 1), margin 1; d_ap, then each d_an:
    # a0 p1 (1): 1.5 semi, 3.2 easy | a1 p0 (1): 0.5 hard, 2.2 easy
    # a2 p3 (1.7): 1.5 hard, 0.5 hard | a3 p2 (1.7): 3.2 easy, 2.2 semi
    # -> hard 3, semi-hard 2, easy 3 of 8.
    metric = tftriplet.TripletDifficulty(margin=1.0)
    metric.update_state([0, 0, 1, 1], [[0.0], [1.0], [1.5], [3.2]])
    result = as_floats(metric.result())
    np.testing.assert_allclose(
        [result["hard"], result["semi_hard"], result["easy"]], [3 / 8, 2 / 8, 3 / 8]
    )


def test_tie_at_margin_zero_is_hard():
    # a0 p1: d_ap = 1 = d_an (point -1): hard. a1 p0: d_ap = 1, d_an = 2: easy at margin 0.
    metric = tftriplet.TripletDifficulty(margin=0.0)
    metric.update_state([0, 0, 1], [[0.0], [1.0], [-1.0]])
    assert as_floats(metric.result()) == {"easy": 0.5, "semi_hard": 0.0, "hard": 0.5}
    assert reference.triplet_difficulty([0, 0, 1], [[0.0], [1.0], [-1.0]], 0.0) == {
        "easy": 1,
        "semi_hard": 0,
        "hard": 1,
        "valid": 2,
    }


def test_no_valid_triple_gives_zeros():
    metric = tftriplet.TripletDifficulty()
    metric.update_state([0, 1, 2], np.eye(3))
    assert as_floats(metric.result()) == {"easy": 0.0, "semi_hard": 0.0, "hard": 0.0}


@pytest.mark.parametrize("inclusive", [True, False])
def test_row_searchsorted_is_numpys_searchsorted_per_row(inclusive):
    rng = np.random.default_rng(1)
    rows = np.sort(rng.integers(0, 6, size=(7, 9)).astype("float32"), axis=1)  # many ties
    queries = rng.integers(-1, 8, size=(7, 5)).astype("float32")
    side = "right" if inclusive else "left"
    expected = np.stack(
        [np.searchsorted(r, q, side=side) for r, q in zip(rows, queries, strict=True)]
    )
    side = "right" if inclusive else "left"
    np.testing.assert_array_equal(row_searchsorted(rows, queries, side), expected)
    # Unknown sizes at trace time take the fixed 32-step path: same answer.
    spec = tf.TensorSpec((None, None), "float32")
    traced = tf.function(lambda r, q: row_searchsorted(r, q, side), input_signature=[spec, spec])
    np.testing.assert_array_equal(traced(rows, queries), expected)


def pair_means(labels, x, distance):
    d = reference.distance_matrix(x, distance)
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :]
    positive = same & ~np.eye(len(labels), dtype=bool)
    return d[positive], d[~same]


@pytest.mark.parametrize("distance", DISTANCES)
def test_mean_distances_accumulate_over_batches(distance):
    rng = np.random.default_rng(2)
    pos_metric = tftriplet.MeanPositiveDistance(distance=distance)
    neg_metric = tftriplet.MeanNegativeDistance(distance=distance)
    positives, negatives = [], []
    for batch_size in (5, 17):
        labels = rng.integers(0, 3, batch_size)
        x = rng.normal(size=(batch_size, 4))
        pos_metric.update_state(labels, x)
        neg_metric.update_state(labels, x)
        p, n = pair_means(labels, x, distance)
        positives.extend(p)
        negatives.extend(n)
    np.testing.assert_allclose(float(pos_metric.result()), np.mean(positives), rtol=1e-6)
    np.testing.assert_allclose(float(neg_metric.result()), np.mean(negatives), rtol=1e-6)


def test_mean_distances_show_collapse():
    labels = [0, 0, 1, 1, 2]
    collapsed = np.tile([[0.3, -1.0, 2.0]], (5, 1))
    pos_metric, neg_metric = tftriplet.MeanPositiveDistance(), tftriplet.MeanNegativeDistance()
    pos_metric.update_state(labels, collapsed)
    neg_metric.update_state(labels, collapsed)
    assert float(pos_metric.result()) == 0.0 and float(neg_metric.result()) == 0.0
    # ... while the loss sits at the margin.
    np.testing.assert_allclose(float(tftriplet.BatchHardTripletLoss(0.2)(labels, collapsed)), 0.2)


@pytest.mark.parametrize(
    "metric",
    [
        tftriplet.TripletDifficulty(margin=0.4, distance="cosine", name="diff"),
        tftriplet.MeanPositiveDistance(distance="squared_euclidean"),
        tftriplet.MeanNegativeDistance(squared=True),
        tftriplet.FractionPositiveTriplets(margin=0.1, distance="cosine"),
    ],
    ids=lambda m: type(m).__name__,
)
def test_metric_config_round_trip(metric):
    config = metric.get_config()
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert type(restored) is type(metric)
    assert restored.get_config() == config


@pytest.mark.parametrize("jit_compile", [False, True])
def test_in_compile_metrics_matches_reference(draw_case, jit_compile):
    rng = np.random.default_rng(3)
    labels, x = draw_case(rng, 24, 4, 4, 0.3, "cosine")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    model.compile(
        loss=tftriplet.SemiHardTripletLoss(margin=0.3, distance="cosine"),
        metrics=[
            tftriplet.TripletDifficulty(margin=0.3, distance="cosine"),
            tftriplet.MeanPositiveDistance(distance="cosine"),
            tftriplet.MeanNegativeDistance(distance="cosine"),
        ],
        jit_compile=jit_compile,
    )
    logs = model.evaluate(x, labels, batch_size=24, verbose=0, return_dict=True)
    expected = fractions(reference.triplet_difficulty(labels, x, 0.3, "cosine"))
    for kind, value in expected.items():
        np.testing.assert_allclose(logs[kind], value, rtol=1e-6, atol=1e-7)
    p, n = pair_means(labels, x, "cosine")
    np.testing.assert_allclose(logs["mean_positive_distance"], np.mean(p), rtol=1e-5)
    np.testing.assert_allclose(logs["mean_negative_distance"], np.mean(n), rtol=1e-5)
    ref = reference.semi_hard(labels, x, 0.3, "cosine")["loss"]
    np.testing.assert_allclose(logs["loss"], ref, rtol=1e-5)
