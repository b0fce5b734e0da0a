"""Helpers for the mining, distance and difficulty tests (case generation, gradients)."""

import itertools

import numpy as np
import tensorflow as tf

from tftriplet import reference

#: (strategy, soft) pairs that exist: semi-hard has no soft form.
VARIANTS = [
    ("batch_all", False),
    ("batch_all", True),
    ("batch_hard", False),
    ("batch_hard", True),
    ("semi_hard", False),
]
DISTANCES = ("euclidean", "squared_euclidean", "cosine")
ALL_CASES = [(n, s, d) for (n, s), d in itertools.product(VARIANTS, DISTANCES)]


def case_id(case):
    name, soft, distance = case
    return f"{name}-{'soft' if soft else 'hinge'}-{distance}"


def clear_of_ties(labels, embeddings, margin, distance, tol=1e-4):
    """True when no selection or hinge of any strategy sits within ``tol`` of a tie.

    Checks every anchor's row: all off-diagonal distances pairwise ``tol`` apart (so the
    hardest / semi-hard choices are unique), no Euclidean distance within ``tol`` of 0, and
    no valid triple's ``d_ap - d_an + margin`` within ``tol`` of 0 (so hinges and counts
    are stable under rounding and finite differences).
    """
    labels = np.asarray(labels).reshape(-1)
    d = reference.distance_matrix(embeddings, distance)
    b = len(labels)
    for i in range(b):
        row = np.sort(np.delete(d[i], i))
        if row.size and (np.min(row) < tol or np.any(np.diff(row) < tol)):
            return False
        for j in range(b):
            for k in range(b):
                valid = i != j and labels[i] == labels[j] and labels[i] != labels[k]
                if valid and abs(d[i, j] - d[i, k] + margin) < tol:
                    return False
    return True


def draw_case(rng, batch_size, dim, num_classes, margin, distance, scale=1.0):
    """Random labels and float64 embeddings, redrawn until :func:`clear_of_ties`."""
    for _ in range(100):
        labels = rng.integers(0, num_classes, size=batch_size).astype("int64")
        embeddings = rng.normal(size=(batch_size, dim)) * scale
        if clear_of_ties(labels, embeddings, margin, distance):
            return labels, embeddings
    raise AssertionError("could not draw a case clear of ties")


def tf_value_and_gradient(fn, embeddings):
    """``fn(embeddings)`` and its gradient with TensorFlow, as NumPy."""
    x = tf.Variable(embeddings)
    with tf.GradientTape() as tape:
        value = fn(x)
    gradient = tape.gradient(value, x)
    gradient = np.zeros_like(embeddings) if gradient is None else gradient.numpy()
    return value.numpy(), gradient
