"""A golden gradient checked against float64 finite differences of the loss, independently
of the loop reference's analytic gradient (for the fixtures and the fresh cases)."""

from __future__ import annotations

import numpy as np

from tftriplet_conformance.reference import distance_matrix, finite_difference_gradient
from tftriplet_conformance.variants import variant_of


def _loss_float64(labels, embeddings, loss):
    """The loss value alone: the batch-all hinge from its hinges, the rest from the loops."""
    variant = variant_of({"loss": loss})
    if loss["name"] == "batch_all" and not loss.get("soft") and loss["distance"] != "cosine":
        hinges = variant.hinges(labels, embeddings, loss)
        positive = hinges[hinges > 0]
        return positive.sum() / (positive.size + 1e-12)
    return variant.reference(labels, embeddings, loss)["loss"]


def _clearance(fixture):
    """How far the nearest decision (hinge, selection) is from 0."""
    variant = variant_of(fixture)
    if variant.decisions is None:
        return fixture["numerics"]["min_abs_hinge"] or 1.0
    labels = np.array(fixture["inputs"]["labels"], dtype=np.int64)
    values = variant.decisions(labels, fixture["inputs"]["embeddings"], fixture["loss"])
    return float(np.min(np.abs(values))) if values.size else 1.0


def has_distinct_rows(fixture):
    """No two rows of the fixture's embeddings are equal."""
    embeddings = np.array(fixture["inputs"]["embeddings"])
    d = distance_matrix(embeddings)
    return bool(np.all(d[~np.eye(len(embeddings), dtype=bool)] > 0))


def assert_gradient_is_the_finite_difference(fixture):
    """The fixture's expected gradient is the central finite difference of its loss."""
    labels = np.array(fixture["inputs"]["labels"], dtype=np.int64)
    embeddings = np.array(fixture["inputs"]["embeddings"])
    assert has_distinct_rows(fixture), "FD needs distinct rows"
    # A step in proportion to the embeddings, and small enough that no hinge changes sign
    # (a coordinate step moves a distance by at most eps, a squared one by 2 |e| eps).
    size = max(1.0, float(np.max(np.abs(embeddings))))
    clearance = _clearance(fixture)
    eps = min(1e-5 * size, clearance / (8 * size))
    numeric = finite_difference_gradient(
        lambda e: _loss_float64(labels, e, fixture["loss"]), embeddings, eps=eps
    )
    golden = np.array(fixture["expected"]["gradient"])
    # truncation error of central differences, plus round-off of the loss divided by eps
    allowed = 1e-6 * np.max(np.abs(golden)) + 1e-14 * abs(fixture["expected"]["loss"]) / eps
    assert np.max(np.abs(numeric - golden)) <= allowed
