"""Retrieval metrics on held-out embeddings: recall@k and MAP@R, in NumPy.

Two protocols, both ranking by Euclidean distance with ties broken by sample index (so
results are deterministic):

- leave-one-out (the default): every sample is a query once and is ranked against all
  *other* samples;
- query against gallery (`gallery_embeddings`, `gallery_labels`): every query is ranked
  against all gallery samples (the two sets are disjoint: a query is never in the gallery).

A query with no relevant sample (no other sample of its class) cannot be answered and is left
out of every average; `num_queries` says how many were used. Queries are ranked in chunks
of `chunk_size`, so memory is `O(chunk_size * N)` for `N` ranked samples, not
`O(N^2)`.

- `recall@k` (Song et al. 2016): the fraction of queries with at least one sample of their
  own class among their `k` nearest neighbours.
- `map@r` (Musgrave et al. 2020): for a query with `R` other samples of its class,
  `MAP@R = (1/R) * sum_{i=1..R} P(i) * rel(i)`, where `rel(i)` is 1 when the `i`-th
  neighbour shares the query's class and `P(i)` is the precision over the first `i`
  neighbours. It is 1 only when the `R` nearest neighbours are exactly the query's class.

References:
    Song, Xiang, Jegelka, Savarese. "Deep Metric Learning via Lifted Structured Feature
    Embedding", CVPR 2016. https://arxiv.org/abs/1511.06452
    Musgrave, Belongie, Lim. "A Metric Learning Reality Check", ECCV 2020, section 3.2.
    https://arxiv.org/abs/2003.08505
"""

from __future__ import annotations

import numpy as np

from tftriplet.inputs import check_class_ids

_CHUNK = 512  # queries per block: keeps memory at O(chunk * N), not O(N^2)


def _check(embeddings, labels, name="", min_samples=2):
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2:
        raise ValueError(f"{name}embeddings must have shape (N, D); got shape {embeddings.shape}.")
    if embeddings.dtype.kind not in "iuf":
        raise TypeError(f"{name}embeddings must be numeric; got dtype {embeddings.dtype}.")
    labels = check_class_ids(
        labels, f"{name}labels", num_rows=embeddings.shape[0], rows=f"{name}embeddings"
    )
    embeddings = embeddings.astype(np.float64)
    if not np.all(np.isfinite(embeddings)):
        raise ValueError(f"{name}embeddings contain NaN or inf.")
    if embeddings.shape[0] < min_samples:
        raise ValueError(
            f"need at least {min_samples} {name}samples to rank; got {embeddings.shape[0]}."
        )
    return embeddings, labels


def _ranked_matches(queries, query_labels, gallery, gallery_labels, leave_one_out, chunk_size):
    """Yield, per block of queries, `(matches, num_relevant)`.

    `matches[q, i]` is True when the `i`-th nearest gallery sample of query `q` has the
    query's class; `num_relevant[q]` is `R`, the number of gallery samples of that class
    (without the query itself under leave-one-out, where the gallery is the queries).
    """
    n = gallery.shape[0]
    gallery_norms = np.sum(gallery**2, axis=1)
    query_norms = np.sum(queries**2, axis=1)
    classes, gallery_inverse, counts = np.unique(
        gallery_labels, return_inverse=True, return_counts=True
    )
    position = np.searchsorted(classes, query_labels)
    position = np.minimum(position, len(classes) - 1)
    known = classes[position] == query_labels  # the query's class is in the gallery
    query_inverse = np.where(known, position, -1)
    num_relevant = np.where(known, counts[position], 0)
    ranked = n - 1 if leave_one_out else n
    if leave_one_out:
        num_relevant = num_relevant - 1
    for start in range(0, queries.shape[0], chunk_size):
        stop = min(start + chunk_size, queries.shape[0])
        # Squared distances rank the same as distances; clamp the rounding below 0.
        distances = query_norms[start:stop, None] + gallery_norms[None, :]
        distances -= 2 * queries[start:stop] @ gallery.T
        np.maximum(distances, 0.0, out=distances)
        if leave_one_out:  # a query never retrieves itself
            distances[np.arange(stop - start), np.arange(start, stop)] = np.inf
        order = np.argsort(distances, axis=1, kind="stable")[:, :ranked]
        matches = gallery_inverse[order] == query_inverse[start:stop, None]
        yield matches, num_relevant[start:stop]


def retrieval_metrics(
    embeddings,
    labels,
    ks=(1, 5),
    *,
    gallery_embeddings=None,
    gallery_labels=None,
    chunk_size=None,
):
    """Recall@k for each `k` in `ks` and MAP@R, leave-one-out or query against gallery.

    Args:
        embeddings: the queries, array `(N, D)`; under leave-one-out also the gallery.
        labels: integer class ids `(N,)`.
        ks: the `k` of each recall@k; each in `1 .. G`, where `G` is the number of
            samples a query is ranked against (`N - 1` under leave-one-out).
        gallery_embeddings: optional gallery `(G, D)`; given, each query is ranked against
            it instead of against the other queries.
        gallery_labels: integer class ids `(G,)` of the gallery; given with
            `gallery_embeddings`.
        chunk_size: queries ranked at once (default 512); memory is `O(chunk_size * G)`.

    Returns:
        dict with `"recall@<k>"` per `k`, `"map@r"` (floats in [0, 1]) and
            `"num_queries"` (queries with at least one relevant sample; the others are left
            out).

    Raises:
        ValueError: on wrong shapes, non-finite embeddings, a `k` out of range, a gallery
            given without its labels (or the reverse), or no answerable query.

    Example:
        ```pycon
        >>> retrieval_metrics([[0.0], [0.1], [5.0], [5.1]], [0, 0, 1, 1], ks=(1,))
        {'recall@1': 1.0, 'map@r': 1.0, 'num_queries': 4}
        ```

    Reference:
        Musgrave, Belongie, Lim, "A Metric Learning Reality Check", ECCV 2020, section 3.2.
    """
    leave_one_out = gallery_embeddings is None and gallery_labels is None
    embeddings, labels = _check(embeddings, labels, min_samples=2 if leave_one_out else 1)
    if (gallery_embeddings is None) != (gallery_labels is None):
        raise ValueError("give gallery_embeddings and gallery_labels together, or neither.")
    if leave_one_out:
        gallery, gallery_labels = embeddings, labels
    else:
        gallery, gallery_labels = _check(
            gallery_embeddings, gallery_labels, name="gallery_", min_samples=1
        )
        if gallery.shape[1] != embeddings.shape[1]:
            raise ValueError(
                f"gallery_embeddings must have the queries' dimension D={embeddings.shape[1]}; "
                f"got shape {gallery.shape}."
            )
    chunk_size = _CHUNK if chunk_size is None else chunk_size
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}.")
    ranked = gallery.shape[0] - 1 if leave_one_out else gallery.shape[0]
    ks = [int(k) for k in ks]
    for k in ks:
        if not 1 <= k <= ranked:
            what = "N - 1" if leave_one_out else "the gallery size"
            raise ValueError(f"k must be in 1..{ranked} ({what}); got k={k}.")
    hits = dict.fromkeys(ks, 0)
    ap_sum = 0.0
    num_queries = 0
    blocks = _ranked_matches(
        embeddings, labels, gallery, gallery_labels, leave_one_out, int(chunk_size)
    )
    for matches, num_relevant in blocks:
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
        if leave_one_out:
            raise ValueError(
                "no query has another sample of its class, so recall and MAP@R are "
                f"undefined; labels hold {len(np.unique(labels))} classes, each with a single "
                "sample."
            )
        raise ValueError("no query's class is in the gallery, so recall and MAP@R are undefined.")
    result = {f"recall@{k}": hits[k] / num_queries for k in ks}
    result["map@r"] = ap_sum / num_queries
    result["num_queries"] = num_queries
    return result


def recall_at_k(embeddings, labels, k):
    """Leave-one-out recall@k; see `retrieval_metrics`."""
    return retrieval_metrics(embeddings, labels, ks=(k,))[f"recall@{k}"]


def map_at_r(embeddings, labels):
    """Leave-one-out mean average precision at R (MAP@R); see `retrieval_metrics`."""
    return retrieval_metrics(embeddings, labels, ks=(1,))["map@r"]
