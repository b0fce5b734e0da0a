"""retrieval_metrics' query-against-gallery protocol against plain loops."""

import math

import numpy as np
import pytest

from tftriplet.retrieval import retrieval_metrics


def brute_force_gallery(queries, query_labels, gallery, gallery_labels, ks):
    """Each query ranked against every gallery sample by (distance, gallery index)."""
    hits = dict.fromkeys(ks, 0)
    ap_sum = 0.0
    answered = 0
    for q, label in zip(queries, query_labels, strict=True):
        r = sum(1 for g in gallery_labels if g == label)
        if r == 0:
            continue
        answered += 1
        ranked = sorted((math.dist(q, g), j) for j, g in enumerate(gallery))
        relevance = [int(gallery_labels[j] == label) for _, j in ranked]
        for k in ks:
            hits[k] += int(any(relevance[:k]))
        ap_sum += sum(sum(relevance[:i]) / i * relevance[i - 1] for i in range(1, r + 1)) / r
    result = {f"recall@{k}": hits[k] / answered for k in ks}
    result["map@r"] = ap_sum / answered
    result["num_queries"] = answered
    return result


def test_hand_case():
    # Gallery on a line: class 0 at 0 and 3, class 1 at 1. Query of class 0 at 0.9:
    # neighbours 1 (d 0.1, class 1), 0 (d 0.9, class 0), 3 (d 2.1, class 0): relevance
    # [0, 1, 1], R = 2, AP = (0 + 1/2) / 2 = 1/4. Query of class 2 has no gallery match.
    gallery = np.array([[0.0], [1.0], [3.0]])
    got = retrieval_metrics(
        [[0.9], [7.0]], [0, 2], ks=(1, 2), gallery_embeddings=gallery, gallery_labels=[0, 1, 0]
    )
    assert got == {"recall@1": 0.0, "recall@2": 1.0, "map@r": 0.25, "num_queries": 1}


@pytest.mark.parametrize("seed", range(4))
def test_matches_plain_loops_on_random_data(seed):
    rng = np.random.default_rng(seed)
    dim = int(rng.integers(1, 5))
    queries = rng.normal(size=(int(rng.integers(5, 30)), dim))
    gallery = rng.normal(size=(int(rng.integers(6, 40)), dim))
    query_labels = rng.integers(0, 5, size=len(queries))
    gallery_labels = rng.integers(0, 4, size=len(gallery))  # class 4 is never in the gallery
    got = retrieval_metrics(
        queries,
        query_labels,
        ks=(1, 3),
        gallery_embeddings=gallery,
        gallery_labels=gallery_labels,
        chunk_size=4,
    )
    expected = brute_force_gallery(
        queries.tolist(), query_labels.tolist(), gallery.tolist(), gallery_labels.tolist(), (1, 3)
    )
    assert got == pytest.approx(expected, abs=1e-12)


def test_chunk_size_does_not_change_the_result():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(50, 3))
    y = rng.integers(0, 4, size=50)
    whole = retrieval_metrics(x, y, ks=(1, 5), chunk_size=50)
    assert retrieval_metrics(x, y, ks=(1, 5), chunk_size=3) == pytest.approx(whole, abs=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gallery_embeddings": np.zeros((3, 2))}, "together"),
        ({"gallery_embeddings": np.zeros((3, 5)), "gallery_labels": [0, 1, 0]}, "dimension D=2"),
        ({"gallery_embeddings": np.zeros((3, 2)), "gallery_labels": [0, 1]}, "gallery_labels"),
        (
            {"gallery_embeddings": np.zeros((3, 2)), "gallery_labels": [5, 6, 7]},
            "class is in the gallery",
        ),
        ({"gallery_embeddings": np.zeros((3, 2)), "gallery_labels": [0, 1, 0], "ks": (4,)}, "1..3"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_gallery_input_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        retrieval_metrics(np.zeros((2, 2)), [0, 1], **{"ks": (1,), **kwargs})
