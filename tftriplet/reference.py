"""Float64 NumPy reference implementations: the obvious definitions, written as loops.

These mirror the seed's C program in meaning (``pairwise_distance``, ``get_triplet_mask``,
``triplet_loss``) and are the independent reference that tests and the conformance suite
compare every backend against. They favour being plainly correct over being fast.
"""

from __future__ import annotations

import numpy as np

#: The C program's ``DEVIDE_SAFE``: added to denominators so that 0 / 0 gives 0.
DIVIDE_SAFE = 1e-12


def pairwise_distances(embeddings, squared=False):
    """Euclidean distances between all rows, computed from differences in float64.

    Returns a ``(B, B)`` array; the diagonal is exactly 0.
    """
    e = np.asarray(embeddings, dtype=np.float64)
    diff = e[:, None, :] - e[None, :, :]
    sq = np.einsum("ijk,ijk->ij", diff, diff)
    return sq if squared else np.sqrt(sq)


def triplet_mask(labels):
    """``mask[i, j, k]`` is True iff i, j, k are distinct, label i == label j != label k."""
    labels = np.asarray(labels).reshape(-1)
    b = labels.shape[0]
    mask = np.zeros((b, b, b), dtype=bool)
    for i in range(b):
        for j in range(b):
            for k in range(b):
                distinct = i != j and i != k and j != k
                mask[i, j, k] = distinct and labels[i] == labels[j] and labels[i] != labels[k]
    return mask


def batch_all_triplet_loss(labels, embeddings, margin=0.2, squared=False):
    """The seed program's masked batch-all triplet loss, with its counts and gradient.

    Over every valid triple (anchor i, positive j, negative k), the hinge
    ``max(d(i, j) - d(i, k) + margin, 0)`` is summed and divided by the number of positive
    hinges (+ ``DIVIDE_SAFE``); ``fraction_positive`` is positive / (valid + ``DIVIDE_SAFE``).

    Returns:
        A dict with ``loss``, ``fraction_positive``, ``num_positive``, ``num_valid`` and
        ``gradient`` (d loss / d embeddings, shape ``(B, D)``). Where a distance is 0 the
        gradient of the (non-squared) distance is taken as 0, the subgradient the backends use.
    """
    labels = np.asarray(labels).reshape(-1)
    e = np.asarray(embeddings, dtype=np.float64)
    b = e.shape[0]
    d = pairwise_distances(e, squared)
    mask = triplet_mask(labels)
    total = 0.0
    num_positive = 0
    num_valid = 0
    # d loss / d distance, before dividing by the number of positive triples
    coeff = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            for k in range(b):
                if not mask[i, j, k]:
                    continue
                num_valid += 1
                hinge = d[i, j] - d[i, k] + margin
                if hinge > 0:
                    num_positive += 1
                    total += hinge
                    coeff[i, j] += 1.0
                    coeff[i, k] -= 1.0
    denominator = num_positive + DIVIDE_SAFE
    loss = total / denominator
    fraction = num_positive / (num_valid + DIVIDE_SAFE)
    gradient = _distance_gradient(e, d, coeff / denominator, squared)
    return {
        "loss": loss,
        "fraction_positive": fraction,
        "num_positive": num_positive,
        "num_valid": num_valid,
        "gradient": gradient,
    }


def _distance_gradient(e, d, coeff, squared):
    """Chain rule from ``d loss / d d[i, j] = coeff[i, j]`` to ``d loss / d embeddings``."""
    b = e.shape[0]
    grad = np.zeros_like(e)
    for i in range(b):
        for j in range(b):
            c = coeff[i, j]
            if c == 0.0 or i == j:
                continue
            diff = e[i] - e[j]
            if squared:
                g = 2.0 * diff
            elif d[i, j] > 0.0:
                g = diff / d[i, j]
            else:
                continue
            grad[i] += c * g
            grad[j] -= c * g
    return grad


def finite_difference_gradient(fn, embeddings, eps=1e-6):
    """Central finite differences of the scalar ``fn(embeddings)`` in float64."""
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
