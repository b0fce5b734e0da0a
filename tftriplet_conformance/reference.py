"""The float64 NumPy reference: the definitions of the triplet losses, written as loops.

The conformance suite's oracle: every golden value and gradient of the fixtures comes from
here, and the tests compare every backend against it. Batch-all follows the seed
document's C program (`pairwise_distance`, `get_triplet_mask`, `triplet_loss`); each
strategy returns a dict with `loss`, `gradient` (d loss / d embeddings) and its counts.
Plainly correct rather than fast.
"""

from __future__ import annotations

import numpy as np

#: The C program's `DEVIDE_SAFE`: added to denominators so that 0 / 0 gives 0.
DIVIDE_SAFE = 1e-12


#: The distance names, as :data:`tftriplet.DISTANCES`.
DISTANCE_NAMES = ("euclidean", "squared_euclidean", "cosine")


def distance_matrix(embeddings, distance="euclidean"):
    """`(B, B)` distances by name, in float64; every diagonal entry is 0.

    Euclidean distances come from the differences of the rows (no `|a|^2 - 2ab + |b|^2`
    cancellation). `cosine` is `1 - e_i.e_j / (|e_i| |e_j|)`, with 1 for a pair
    involving a zero row.
    """
    if distance not in DISTANCE_NAMES:
        raise ValueError(f"distance must be one of {DISTANCE_NAMES}; got {distance!r}.")
    e = np.asarray(embeddings, dtype=np.float64)
    b = e.shape[0]
    if distance != "cosine":
        diff = e[:, None, :] - e[None, :, :]
        sq = np.einsum("ijk,ijk->ij", diff, diff)
        return sq if distance == "squared_euclidean" else np.sqrt(sq)
    d = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            if i != j:
                ni, nj = np.linalg.norm(e[i]), np.linalg.norm(e[j])
                d[i, j] = 1.0 if ni == 0 or nj == 0 else 1.0 - e[i] @ e[j] / (ni * nj)
    return d


def triplet_mask(labels):
    """`mask[i, j, k]` is True iff i, j, k are distinct, label i == label j != label k."""
    labels = np.asarray(labels).reshape(-1)
    b = labels.shape[0]
    mask = np.zeros((b, b, b), dtype=bool)
    for i in range(b):
        for j in range(b):
            for k in range(b):
                distinct = i != j and i != k and j != k
                mask[i, j, k] = distinct and labels[i] == labels[j] and labels[i] != labels[k]
    return mask


def distance_pair_gradient(embeddings, i, j, distance="euclidean", d_ij=None):
    """`(d d[i, j] / d e_i, d d[i, j] / d e_j)` for `i != j`.

    Zero where the distance is not differentiable: a Euclidean distance of 0, or a cosine
    distance involving a zero row (its value is then the constant 1). `d_ij` is the
    Euclidean distance if already known.
    """
    e = np.asarray(embeddings, dtype=np.float64)
    zero = np.zeros_like(e[i])
    diff = e[i] - e[j]
    if distance == "squared_euclidean":
        return 2.0 * diff, -2.0 * diff
    if distance == "euclidean":
        norm = np.sqrt(diff @ diff) if d_ij is None else d_ij
        return (diff / norm, -diff / norm) if norm > 0 else (zero, zero)
    ni, nj = np.linalg.norm(e[i]), np.linalg.norm(e[j])
    if ni == 0 or nj == 0:
        return zero, zero
    cos = e[i] @ e[j] / (ni * nj)
    # d/de_i of -cos(e_i, e_j) = -(e_j / (|e_i||e_j|) - cos * e_i / |e_i|^2)
    return -(e[j] / (ni * nj) - cos * e[i] / ni**2), -(e[i] / (ni * nj) - cos * e[j] / nj**2)


def distance_chain_rule(embeddings, coeff, distance="euclidean"):
    """`d loss / d embeddings` from `coeff[i, j] = d loss / d d[i, j]`."""
    e = np.asarray(embeddings, dtype=np.float64)
    d = distance_matrix(e, distance)
    grad = np.zeros_like(e)
    for i in range(e.shape[0]):
        for j in range(e.shape[0]):
            if i != j and coeff[i, j] != 0.0:
                g_i, g_j = distance_pair_gradient(e, i, j, distance, d[i, j])
                grad[i] += coeff[i, j] * g_i
                grad[j] += coeff[i, j] * g_j
    return grad


def finite_difference_gradient(fn, embeddings, eps=1e-6):
    """Central finite differences of the scalar `fn(embeddings)` in float64."""
    e = np.array(embeddings, dtype=np.float64)
    grad = np.zeros_like(e)
    for idx in np.ndindex(e.shape):
        old = e[idx]
        e[idx] = old + eps
        plus = fn(e)
        e[idx] = old - eps
        minus = fn(e)
        e[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def softplus(x):
    """`log(1 + exp(x))`, exact in float64 for any `x`."""
    return float(np.logaddexp(0.0, x))


def sigmoid(x):
    """The derivative of `softplus`."""
    if x >= 0:
        return float(1.0 / (1.0 + np.exp(-x)))
    return float(np.exp(x) / (1.0 + np.exp(x)))  # no cancellation for x << 0


class _Terms:
    """Sums the loss terms of chosen triples and their `d loss / d distance` coefficients."""

    def __init__(self, distances, margin, soft):
        self.d, self.margin, self.soft = distances, margin, soft
        self.total, self.num_positive = 0.0, 0
        self.coeff = np.zeros_like(distances)

    def add(self, i, j, k):
        """Add the term of `x = d_ij - d_ik`: `max(x + m, 0)`, or `softplus(x)` if soft."""
        x = self.d[i, j] - self.d[i, k]
        self.num_positive += int(x + self.margin > 0)
        if self.soft:
            value, slope = softplus(x), sigmoid(x)
        else:
            value, slope = max(x + self.margin, 0.0), float(x + self.margin > 0)
        self.total += value
        self.coeff[i, j] += slope
        self.coeff[i, k] -= slope

    def result(self, embeddings, distance, denominator, **counts):
        """Loss and gradient of `total / (denominator + DIVIDE_SAFE)`, with the counts."""
        denominator = denominator + DIVIDE_SAFE
        gradient = distance_chain_rule(embeddings, self.coeff / denominator, distance)
        return {
            "loss": self.total / denominator,
            "gradient": gradient,
            "num_positive": self.num_positive,
            **counts,
        }


def _positives(labels, i):
    return [j for j in range(len(labels)) if j != i and labels[j] == labels[i]]


def _negatives(labels, i):
    return [k for k in range(len(labels)) if labels[k] != labels[i]]


def _anchors(labels, anchors):
    """The anchor rows: every row, or the first `anchors` rows (a pool's batch)."""
    return range(len(labels) if anchors is None else anchors)


def batch_all(labels, embeddings, margin=0.2, distance="euclidean", soft=False, anchors=None):
    """Batch-all over every valid triple (anchor i, positive j, negative k).

    Hinge: `sum max(d_ij - d_ik + m, 0) / #{positive hinges}` (the seed's form). Soft:
    `sum softplus(d_ij - d_ik) / #{valid triples}`. Counts: `num_valid`,
    `num_positive` (triples with `d_ij - d_ik + m > 0`) and `fraction_positive`.
    `anchors`: only the first `anchors` rows are anchors (`pooled`); None: every row.
    """
    labels = np.asarray(labels).reshape(-1)
    e = np.asarray(embeddings, dtype=np.float64)
    terms = _Terms(distance_matrix(e, distance), margin, soft)
    num_valid = 0
    for i in _anchors(labels, anchors):
        for j in _positives(labels, i):
            for k in _negatives(labels, i):
                num_valid += 1
                terms.add(i, j, k)
    return terms.result(
        e,
        distance,
        num_valid if soft else terms.num_positive,
        num_valid=num_valid,
        fraction_positive=terms.num_positive / (num_valid + DIVIDE_SAFE),
    )


def batch_hard(labels, embeddings, margin=0.2, distance="euclidean", soft=False, anchors=None):
    """Batch-hard (Hermans et al. 2017): per anchor, hardest positive vs hardest negative.

    Over anchors i with a positive and a negative: `term(max_j d_ij - min_k d_ik)`, term
    the hinge `max(x + m, 0)` or `softplus(x)`; the loss is the mean over those anchors.
    Counts: `num_anchors` (anchors used) and `num_positive` (their `x + m > 0`).
    `anchors` as for `batch_all`.
    """
    labels = np.asarray(labels).reshape(-1)
    e = np.asarray(embeddings, dtype=np.float64)
    d = distance_matrix(e, distance)
    terms = _Terms(d, margin, soft)
    num_anchors = 0
    for i in _anchors(labels, anchors):
        positives, negatives = _positives(labels, i), _negatives(labels, i)
        if positives and negatives:
            num_anchors += 1
            hardest_positive = max(positives, key=lambda p: d[i, p])
            hardest_negative = min(negatives, key=lambda n: d[i, n])
            terms.add(i, hardest_positive, hardest_negative)
    return terms.result(e, distance, num_anchors, num_anchors=num_anchors)


def semi_hard(labels, embeddings, margin=0.2, distance="euclidean", soft=False, anchors=None):
    """Semi-hard (FaceNet): per anchor-positive pair, the closest farther negative.

    Over pairs (i, j) whose anchor has a negative: the negative k closest to i among those
    with `d_ik > d_ij`, else the farthest negative; `max(d_ij - d_ik + m, 0)`, mean over
    those pairs. Counts: `num_pairs` and `num_positive`. There is no soft form.
    `anchors` as for `batch_all`.
    """
    if soft:
        raise ValueError("semi_hard has no soft-margin form; got soft=True.")
    labels = np.asarray(labels).reshape(-1)
    e = np.asarray(embeddings, dtype=np.float64)
    d = distance_matrix(e, distance)
    terms = _Terms(d, margin, soft=False)
    num_pairs = 0
    for i in _anchors(labels, anchors):
        negatives = _negatives(labels, i)
        if not negatives:
            continue
        for j in _positives(labels, i):
            farther = [n for n in negatives if d[i, n] > d[i, j]]
            if farther:
                k = min(farther, key=lambda n: d[i, n])
            else:
                k = max(negatives, key=lambda n: d[i, n])
            num_pairs += 1
            terms.add(i, j, k)
    return terms.result(e, distance, num_pairs, num_pairs=num_pairs)


#: Strategy name (a fixture's `loss["name"]`) to reference function.
STRATEGIES = {"batch_all": batch_all, "batch_hard": batch_hard, "semi_hard": semi_hard}


def triplet_loss(
    labels, embeddings, strategy="batch_all", margin=0.2, distance="euclidean", soft=False
):
    """The reference of `strategy` (`"batch_all"`, `"batch_hard"` or `"semi_hard"`)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {tuple(STRATEGIES)}; got {strategy!r}.")
    return STRATEGIES[strategy](labels, embeddings, margin=margin, distance=distance, soft=soft)


def pooled(labels, embeddings, memory_labels, memory_embeddings, strategy="batch_all",
           margin=0.2, distance="euclidean", soft=False):
    """A strategy with a cross-batch memory: the batch's rows are the anchors, the batch
    and the memory together the pool their positives and negatives come from.

    The definitions are the strategy's with "batch" read as "pool" for j and k: the
    memory's rows are positives and negatives, never anchors, and constants (the gradient
    is d loss / d the batch's embeddings, `(B, D)`). An empty memory gives the batch's
    own loss.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    e = np.asarray(embeddings, dtype=np.float64)
    memory_labels = np.asarray(memory_labels, dtype=np.int64).reshape(-1)
    memory = np.asarray(memory_embeddings, dtype=np.float64).reshape(len(memory_labels),
                                                                     e.shape[1])
    pool = np.concatenate([e, memory], axis=0)
    result = STRATEGIES[strategy](np.concatenate([labels, memory_labels]), pool, margin=margin,
                                  distance=distance, soft=soft, anchors=len(labels))
    return {**result, "gradient": result["gradient"][: len(labels)]}


def memory_steps(steps, size, warmup=0, strategy="batch_all", margin=0.2,
                 distance="euclidean", soft=False):
    """The outputs of a loss with a cross-batch memory over a sequence of batches.

    Each batch is computed against the memory it sees (`pooled`), the memory of
    `memory_pools` (the first `warmup` batches see an empty one). `steps`:
    `(labels, embeddings)` pairs; returns one outputs dict per step.
    """
    results = []
    for (labels, embeddings), (pool_labels, pool_rows, b) in zip(
        steps, memory_pools(steps, size, warmup), strict=True
    ):
        results.append(pooled(labels, embeddings, pool_labels[b:], pool_rows[b:], strategy,
                              margin, distance, soft))
    return results


def memory_pools(steps, size, warmup=0):
    """Each step's pool under a cross-batch memory, as `memory_steps` mines it.

    The memory starts empty and holds the `size` most recent samples seen before the
    current batch (first in, first out); the first `warmup` batches do not enter it.
    `steps`: `(labels, embeddings)` pairs; returns one `(labels, rows, batch size)` per
    step as Python lists, the batch's samples first, then the memory's.
    """
    memory_labels, memory_rows, pools = [], [], []
    for step, (labels, embeddings) in enumerate(steps):
        labels = [int(x) for x in labels]
        rows = [[float(x) for x in row] for row in embeddings]
        pools.append((labels + memory_labels, rows + memory_rows, len(labels)))
        if step >= warmup:
            memory_labels = _newest(memory_labels + labels, size)
            memory_rows = _newest(memory_rows + rows, size)
    return pools


def _newest(items, size):
    """The last `size` items of a list (none for 0)."""
    return items[max(len(items) - size, 0):]


def triple_hinges(labels, embeddings, margin=0.2, distance="euclidean", distances=None,
                  anchors=None):
    """`d(i, j) - d(i, k) + margin` over every valid triple, in a fixed order.

    `distances` (a `(B, B)` array) replaces `distance_matrix`, so that the same
    quantities can be evaluated on distances computed another way (in float32, say).
    `anchors`: only the first `anchors` rows are anchors (`pooled`). Returns a 1-D
    array.
    """
    labels = np.asarray(labels).reshape(-1)
    d = distance_matrix(embeddings, distance) if distances is None else np.asarray(distances)
    rows = len(labels) if anchors is None else anchors
    same = labels[:rows, None] == labels[None, :]
    positive = same & ~np.eye(rows, len(labels), dtype=bool)
    valid = positive[:, :, None] & ~same[:, None, :]
    return (d[:rows, :, None] - d[:rows, None, :] + margin)[valid]


def decision_values(
    labels, embeddings, strategy="batch_all", margin=0.2, distance="euclidean", distances=None,
    anchors=None,
):
    """Every quantity whose sign decides a count, a selection or differentiability.

    For a fixture generator (keep `min(abs(values))` clear of 0, so rounding in a backend
    cannot flip a decision) and for tests away from ties, in a fixed order:

    - every valid triple's `d_ij - d_ik + margin` (the hinge, and `num_positive`);
    - for `batch_hard` and `semi_hard`, every difference `d_ia - d_ic` of two distinct
      off-diagonal entries `a < c` of an anchor's row (which positive or negative is
      chosen);
    - for `euclidean`, every off-diagonal distance (its gradient is undefined at 0).

    `distances` replaces `distance_matrix` as in `triple_hinges`; with
    `anchors`, only the first `anchors` rows are anchors and their rows are read.
    Returns a 1-D array.
    """
    d = distance_matrix(embeddings, distance) if distances is None else np.asarray(distances)
    b = d.shape[0]
    rows = b if anchors is None else anchors
    values = [triple_hinges(labels, embeddings, margin, distance, d, anchors)]
    if strategy in ("batch_hard", "semi_hard"):
        a, c = np.triu_indices(b, k=1)
        values += [d[i, a][(a != i) & (c != i)] - d[i, c][(a != i) & (c != i)]
                   for i in range(rows)]
    if distance == "euclidean":
        values.append(d[:rows][~np.eye(rows, b, dtype=bool)])
    return np.concatenate(values)


def triplet_difficulty(labels, embeddings, margin=0.2, distance="euclidean"):
    """Counts of valid triples that are hard, semi-hard and easy (FaceNet's taxonomy).

    `hard`: d_ik <= d_ij; `semi_hard`: d_ij < d_ik < d_ij + m; `easy`: d_ik >= d_ij + m
    (at m = 0 a tie is hard). Also `valid`, the number of valid triples.
    """
    labels = np.asarray(labels).reshape(-1)
    d = distance_matrix(embeddings, distance)
    counts = {"easy": 0, "semi_hard": 0, "hard": 0, "valid": 0}
    for i in range(len(labels)):
        for j in _positives(labels, i):
            for k in _negatives(labels, i):
                counts["valid"] += 1
                if d[i, k] <= d[i, j]:
                    counts["hard"] += 1
                elif d[i, k] < d[i, j] + margin:
                    counts["semi_hard"] += 1
                else:
                    counts["easy"] += 1
    return counts
