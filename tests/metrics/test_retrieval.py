"""recall@k and MAP@R against hand-derived cases, a plain-loop reference and
pytorch-metric-learning."""

import math

import numpy as np
import pytest

from tftriplet.retrieval import map_at_r, recall_at_k, retrieval_metrics


def average_precision_at_r(relevance, r):
    """MAP@R's per-query term from its definition (Musgrave et al. 2020, eq. in 3.2)."""
    total = 0.0
    for i in range(1, r + 1):
        precision_at_i = sum(relevance[:i]) / i
        total += precision_at_i * relevance[i - 1]
    return total / r


def brute_force(embeddings, labels, ks):
    """Leave-one-out retrieval as plain loops: sort the others by (distance, index)."""
    n = len(labels)
    hits = dict.fromkeys(ks, 0)
    ap_sum = 0.0
    queries = 0
    for q in range(n):
        r = sum(1 for j in range(n) if j != q and labels[j] == labels[q])
        if r == 0:
            continue
        queries += 1
        others = []
        for j in range(n):
            if j != q:
                pairs = zip(embeddings[q], embeddings[j], strict=True)
                d = math.sqrt(sum((a - b) ** 2 for a, b in pairs))
                others.append((d, j))
        others.sort()
        relevance = [int(labels[j] == labels[q]) for _, j in others]
        for k in ks:
            hits[k] += int(any(relevance[:k]))
        ap_sum += average_precision_at_r(relevance, r)
    result = {f"recall@{k}": hits[k] / queries for k in ks}
    result["map@r"] = ap_sum / queries
    result["num_queries"] = queries
    return result


def test_hand_case_with_partial_precision_and_a_tie():
    # Points on a line. Class 0 at 0, 1, 5; class 1 (a single sample) at 2.
    x = np.array([[0.0], [1.0], [5.0], [2.0]])
    y = np.array([0, 0, 0, 1])
    # Ranked neighbours (distance, then index for ties) and their relevance:
    # q0 @0: 1 (d1, same), 3 (d2, other), 2 (d5, same)           -> [1, 0, 1], R = 2
    # q1 @1: 0 (d1, same), 3 (d1, other; tie, higher index), 2 (d4, same) -> [1, 0, 1], R = 2
    # q2 @5: 3 (d3, other), 1 (d4, same), 0 (d5, same)           -> [0, 1, 1], R = 2
    # q3 is the only sample of class 1: no answer exists, so it is not a query.
    relevance = [[1, 0, 1], [1, 0, 1], [0, 1, 1]]
    expected_map = np.mean([average_precision_at_r(rel, 2) for rel in relevance])
    assert expected_map == pytest.approx(5 / 12)  # (1/2 + 1/2 + 1/4) / 3
    got = retrieval_metrics(x, y, ks=(1, 2))
    assert got["num_queries"] == 3
    assert got["recall@1"] == pytest.approx(np.mean([rel[0] for rel in relevance]))
    assert got["recall@2"] == pytest.approx(np.mean([any(rel[:2]) for rel in relevance]))
    assert got["map@r"] == pytest.approx(expected_map)
    assert got == pytest.approx(brute_force(x.tolist(), y.tolist(), (1, 2)))


def test_perfect_clusters_score_one_and_interleaved_classes_score_low():
    clusters = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0], [5.1, 5.0], [5.0, 5.1]])
    y = np.array([0, 0, 0, 1, 1, 1])
    assert retrieval_metrics(clusters, y, ks=(1,)) == {
        "recall@1": 1.0,
        "map@r": 1.0,
        "num_queries": 6,
    }
    # Alternating classes on a line: every nearest neighbour is of the other class.
    line = np.arange(6, dtype=float)[:, None]
    alternating = np.array([0, 1, 0, 1, 0, 1])
    assert recall_at_k(line, alternating, 1) == 0.0
    # Each class has 3 samples, so R = 2. Ranked relevance (ties by index):
    # q0 @0: 1, 2, 3, 4, 5 -> [0, 1, 0, 1, 0]; q5 @5: 4, 3, 2, 1, 0 -> [0, 1, 0, 1, 0]
    # q1 @1: 0, 2, 3, 4, 5 -> [0, 0, 1, 0, 1]; q2 @2: 1, 3, 0, 4, 5 -> [0, 0, 1, 1, 0]
    # q3 @3: 2, 4, 1, 5, 0 -> [0, 0, 1, 1, 0]; q4 @4: 3, 5, 2, 1, 0 -> [0, 0, 1, 1, 0]
    relevance = [[0, 1, 0, 1, 0], [0, 0, 1, 0, 1], [0, 0, 1, 1, 0]] + [[0, 0, 1, 1, 0]] * 2
    relevance.append([0, 1, 0, 1, 0])
    expected = np.mean([average_precision_at_r(rel, 2) for rel in relevance])
    assert expected == pytest.approx(1 / 12)  # (1/4 + 1/4) / 6
    assert map_at_r(line, alternating) == pytest.approx(expected)


def test_map_at_r_is_stricter_than_recall():
    # Every sample's nearest neighbour is its twin of the same class, but the class's other
    # pair lies beyond a pair of the other class: q @0 ranks 0.1, 2, 2.1 first -> [1, 0, 0].
    x = np.array([[0.0], [0.1], [5.0], [5.1], [2.0], [2.1], [7.0], [7.1]])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    got = retrieval_metrics(x, y, ks=(1,))
    assert got["recall@1"] == 1.0
    assert got["map@r"] < 1.0
    assert got == pytest.approx(brute_force(x.tolist(), y.tolist(), (1,)))


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_loops_on_random_data(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 60))
    x = rng.normal(size=(n, int(rng.integers(1, 6))))
    y = rng.integers(0, int(rng.integers(2, 7)), size=n)
    # Several query blocks, so the chunking is exercised too.
    monkeypatch.setattr("tftriplet.retrieval._CHUNK", 7)
    got = retrieval_metrics(x, y, ks=(1, 3, 5))
    assert got == pytest.approx(brute_force(x.tolist(), y.tolist(), (1, 3, 5)), abs=1e-12)


def test_matches_pytorch_metric_learning():
    pml = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")
    rng = np.random.default_rng(7)
    y = np.repeat(np.arange(5), 12)
    x = rng.normal(size=(60, 8)).astype(np.float32) + y[:, None] * 0.4
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.inference import CustomKNN

    calc = pml.AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"),
        knn_func=CustomKNN(LpDistance(normalize_embeddings=False)),
    )
    theirs = calc.get_accuracy(x, y)
    ours = retrieval_metrics(x, y, ks=(1,))
    assert ours["recall@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert ours["map@r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-6)


@pytest.mark.parametrize(
    ("x", "y", "ks", "error", "match"),
    [
        (np.zeros((4,)), [0, 0, 1, 1], (1,), ValueError, r"shape \(N, D\)"),
        (np.zeros((4, 2)), [0, 0, 1], (1,), ValueError, "N=4"),
        (np.zeros((4, 2)), [0.0, 0.0, 1.0, 1.0], (1,), TypeError, "integer"),
        (np.full((4, 2), np.nan), [0, 0, 1, 1], (1,), ValueError, "NaN"),
        (np.zeros((4, 2)), [0, 0, 1, 1], (4,), ValueError, "k must be in 1..3"),
        (np.zeros((3, 2)), [0, 1, 2], (1,), ValueError, "single sample"),
    ],
)
def test_bad_input_is_named(x, y, ks, error, match):
    with pytest.raises(error, match=match):
        retrieval_metrics(x, np.asarray(y), ks=ks)
