"""Small shared helpers for the test suite (case generation only; no expected values)."""

import numpy as np


def random_case(rng, batch_size, dim, num_classes, scale=1.0):
    """Labels drawn so that, where possible, every class has >= 2 members."""
    labels = rng.integers(0, num_classes, size=batch_size)
    embeddings = rng.normal(size=(batch_size, dim)) * scale
    return labels.astype("int64"), embeddings


def clear_of_ties(labels, embeddings, margin, squared, tol=1e-4):
    """True when no valid triple has its hinge within ``tol`` of 0 (counts are then stable)."""
    from tftriplet_conformance import reference

    d = reference.pairwise_distances(embeddings, squared)
    mask = reference.triplet_mask(labels)
    hinge = d[:, :, None] - d[:, None, :] + margin
    return not np.any(mask & (np.abs(hinge) < tol))
