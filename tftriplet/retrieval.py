"""Retrieval metrics on held-out embeddings: recall@k and MAP@R, in NumPy.

Leave-one-out protocol: every sample is a query once and is ranked against all *other*
samples by Euclidean distance (ties broken by sample index, so results are deterministic).
A query whose class has no other sample cannot be answered and is left out of every average;
``num_queries`` says how many were used.

- ``recall@k`` (Song et al. 2016): the fraction of queries with at least one sample of their
  own class among their ``k`` nearest neighbours.
- ``map@r`` (Musgrave et al. 2020): for a query with ``R`` other samples of its class,
  ``MAP@R = (1/R) * sum_{i=1..R} P(i) * rel(i)``, where ``rel(i)`` is 1 when the ``i``-th
  neighbour shares the query's class and ``P(i)`` is the precision over the first ``i``
  neighbours. It is 1 only when the ``R`` nearest neighbours are exactly the query's class.

References:
    Song, Xiang, Jegelka, Savarese. "Deep Metric Learning via Lifted Structured Feature
    Embedding", CVPR 2016. https://arxiv.org/abs/1511.06452
    Musgrave, Belongie, Lim. "A Metric Learning Reality Check", ECCV 2020, section 3.2.
    https://arxiv.org/abs/2003.08505
"""

from __future__ import annotations

import numpy as np

_CHUNK = 512  # queries per block: keeps memory at O(chunk * N), not O(N^2)


def _check(embeddings, labels):
    embeddings = np.asarray(embeddings)
    labels = np.asarray(labels)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must have shape (N, D); got shape {embeddings.shape}.")
    if embeddings.dtype.kind not in "iuf":
        raise TypeError(f"embeddings must be numeric; got dtype {embeddings.dtype}.")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"labels must have shape (N,) with N={embeddings.shape[0]} (the number of "
            f"embeddings); got shape {labels.shape}."
        )
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integer class ids; got dtype {labels.dtype}.")
    embeddings = embeddings.astype(np.float64)
    if not np.all(np.isfinite(embeddings)):
        raise ValueError("embeddings contain NaN or inf.")
    if embeddings.shape[0] < 2:
        raise ValueError(f"need at least 2 samples to rank; got {embeddings.shape[0]}.")
    return embeddings, labels


def _ranked_matches(embeddings, labels):
    """Yield, per block of queries, ``(matches, num_relevant)``.

    ``matches[q, i]`` is True when the ``i``-th nearest other sample of query ``q`` has the
    query's class; ``num_relevant[q]`` is ``R``, the number of other samples of that class.
    """
    n = embeddings.shape[0]
    squared_norms = np.sum(embeddings**2, axis=1)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    num_relevant = counts[inverse] - 1
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        block = embeddings[start:stop]
        # Squared distances rank the same as distances; clamp the rounding below 0.
        distances = squared_norms[start:stop, None] + squared_norms[None, :]
        distances -= 2 * block @ embeddings.T
        np.maximum(distances, 0.0, out=distances)
        rows = np.arange(stop - start)
        distances[rows, np.arange(start, stop)] = np.inf  # a query never retrieves itself
        order = np.argsort(distances, axis=1, kind="stable")[:, : n - 1]
        matches = inverse[order] == inverse[start:stop, None]
        yield matches, num_relevant[start:stop]


def retrieval_metrics(embeddings, labels, ks=(1, 5)):
    """Leave-one-out recall@k for each ``k`` in ``ks`` and MAP@R.

    Args:
        embeddings: array ``(N, D)``.
        labels: integer class ids ``(N,)``.
        ks: the ``k`` of each recall@k; each in ``1 .. N-1``.

    Returns:
        dict with ``"recall@<k>"`` per ``k``, ``"map@r"`` (floats in [0, 1]) and
        ``"num_queries"`` (queries whose class has another sample; the others are left out).

    Raises:
        ValueError: on wrong shapes, non-finite embeddings, a ``k`` out of range, or no query
            with a same-class neighbour.
    """
    embeddings, labels = _check(embeddings, labels)
    n = embeddings.shape[0]
    ks = [int(k) for k in ks]
    for k in ks:
        if not 1 <= k <= n - 1:
            raise ValueError(f"k must be in 1..{n - 1} (N - 1) for N={n} samples; got k={k}.")
    hits = dict.fromkeys(ks, 0)
    ap_sum = 0.0
    num_queries = 0
    for matches, num_relevant in _ranked_matches(embeddings, labels):
        answerable = num_relevant > 0
        num_queries += int(np.sum(answerable))
        for k in ks:
            hits[k] += int(np.sum(np.any(matches[:, :k], axis=1) & answerable))
        ranks = np.arange(1, matches.shape[1] + 1)
        precision = np.cumsum(matches, axis=1) / ranks
        within_r = ranks[None, :] <= num_relevant[:, None]
        terms = np.where(matches & within_r, precision, 0.0).sum(axis=1)
        ap_sum += float(np.sum(terms[answerable] / num_relevant[answerable]))
    if num_queries == 0:
        raise ValueError(
            "no query has another sample of its class, so recall and MAP@R are undefined; "
            f"labels hold {len(np.unique(labels))} classes, each with a single sample."
        )
    result = {f"recall@{k}": hits[k] / num_queries for k in ks}
    result["map@r"] = ap_sum / num_queries
    result["num_queries"] = num_queries
    return result


def recall_at_k(embeddings, labels, k):
    """Leave-one-out recall@k; see :func:`retrieval_metrics`."""
    return retrieval_metrics(embeddings, labels, ks=(k,))[f"recall@{k}"]


def map_at_r(embeddings, labels):
    """Leave-one-out mean average precision at R (MAP@R); see :func:`retrieval_metrics`."""
    return retrieval_metrics(embeddings, labels, ks=(1,))["map@r"]
