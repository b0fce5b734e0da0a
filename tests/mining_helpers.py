"""Helpers for the mining, distance and difficulty tests (case generation, gradients)."""

import itertools

import numpy as np
import tensorflow as tf

from tftriplet_conformance import reference

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
    """True when no decision of any strategy sits within ``tol`` of a tie.

    Uses the reference's batch-hard decision values (a superset of batch-all's: every
    hinge, every pair of distances in an anchor's row, and Euclidean distances near 0), so
    selections, counts and subgradients are stable under rounding and finite differences.
    """
    values = reference.decision_values(labels, embeddings, "batch_hard", margin, distance)
    return values.size == 0 or bool(np.min(np.abs(values)) >= tol)


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
