"""Small shared helpers for the test suite (case generation only; no expected values)."""

import numpy as np


def random_case(rng, batch_size, dim, num_classes, scale=1.0):
    """Random labels and normal embeddings; every class has >= 2 members when
    ``batch_size >= 2 * num_classes`` (else ``min(num_classes, batch_size // 2)`` classes do,
    and the rest of the batch is drawn freely)."""
    paired = min(num_classes, batch_size // 2)
    free = rng.integers(0, num_classes, size=batch_size - 2 * paired)
    labels = rng.permutation(np.concatenate([np.repeat(np.arange(paired), 2), free]))
    embeddings = rng.normal(size=(batch_size, dim)) * scale
    return labels.astype("int64"), embeddings


def clear_of_ties(labels, embeddings, margin, squared, tol=1e-4):
    """True when no valid triple has its hinge within ``tol`` of 0 (counts are then stable)."""
    from tftriplet_conformance import reference

    d = reference.distance_matrix(embeddings, distance_of(squared))
    mask = reference.triplet_mask(labels)
    hinge = d[:, :, None] - d[:, None, :] + margin
    return not np.any(mask & (np.abs(hinge) < tol))


def distance_of(squared):
    """The distance name of the ``squared`` flag."""
    return "squared_euclidean" if squared else "euclidean"
