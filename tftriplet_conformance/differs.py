"""Declared semantic differences of a peer implementation, each with its reason.

A peer (another library's triplet loss) may define a fixture's quantity differently: a mean
over every anchor where the contract averages over the anchors that have a positive and a
negative, a gradient at a zero row, a semi-hard fallback. Such a run is not a bug of either
side, so it is neither a failure nor an expected failure: the adapter declares it as a
`Difference` and the matrix shows `differs`. A declared difference whose run on a fixture
matches after all is `MATCHES`, an error (the declaration is wrong or stale), as an
unexpected pass is for an expected failure; on a fresh case (random inputs, on which the
two quantities may coincide) a match is a pass. Tolerances are never widened for a peer.

An entry matches (backend, fixture, mode) when the backend and mode match its `fnmatch`
patterns, the fixture's name matches `fixture`, every item of `loss` equals the
fixture's loss option (defaults filled: `name`, `margin`, `distance`, `soft`) and
`when(fixture)`, if given, is true. `when` looks only at the fixture's `loss` and
`inputs`, never at its expected values, so that a changed golden number still fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import numpy as np

from tftriplet_conformance.variants import options_of, triple_hinges


@dataclass(frozen=True)
class Difference:
    """One declared difference between a peer and the contract.

    Attributes:
        backend: `fnmatch` pattern of the adapter's name.
        reason: why the peer's number is a different quantity, specifically.
        loss: loss options the fixture must have, e.g. `{"name": "batch_hard"}`.
        fixture: `fnmatch` pattern of the fixture's name.
        mode: `fnmatch` pattern of the adapter's mode (its configuration).
        when: a predicate on the fixture (its loss and inputs), or `None`.
    """

    backend: str
    reason: str
    loss: dict = field(default_factory=dict)
    fixture: str = "*"
    mode: str = "*"
    when: Callable | None = None

    def matches(self, backend, fixture, mode):
        return fnmatchcase(backend, self.backend) and self.covers(fixture, mode)

    def covers(self, fixture, mode):
        """Whether it applies to `fixture` in `mode`, whatever the backend."""
        options = options_of(fixture["loss"])
        return (
            fnmatchcase(fixture["name"], self.fixture)
            and fnmatchcase(mode, self.mode)
            and all(options.get(k) == v for k, v in self.loss.items())
            and (self.when is None or bool(self.when(fixture)))
        )


def declared_difference(declared, fixture, mode):
    """The first of `declared.differences` (`validate.Declarations`) that matches, or
    `None`."""
    for entry in declared.differences:
        if entry.matches(declared.name, fixture, mode):
            return entry
    return None


# Predicates on a fixture's inputs, for `Difference.when`.


def _labels_embeddings(fixture):
    inputs = fixture["inputs"]
    labels = np.array(inputs["labels"], dtype=np.int64)
    return labels, np.asarray(inputs["embeddings"], dtype=np.float64)


def has_zero_row(fixture):
    """Some embedding row is all zeros (cosine distance: value 1, gradient 0 by contract)."""
    _, embeddings = _labels_embeddings(fixture)
    return bool(np.any(~embeddings.any(axis=1)))


def _others(fixture):
    """Per row: how many other rows share its label (positives), and how many do not
    (negatives)."""
    labels, _ = _labels_embeddings(fixture)
    same = labels[:, None] == labels[None, :]
    return same.sum(axis=1) - 1, (~same).sum(axis=1)


def anchor_without_positive_or_negative(fixture):
    """Some row has no other row of its class, or no row of another class."""
    positives, negatives = _others(fixture)
    return bool(np.any((positives == 0) | (negatives == 0)))


def positive_pair_without_negative(fixture):
    """Some row has a positive but no negative (every row of the batch in its class)."""
    positives, negatives = _others(fixture)
    return bool(np.any((positives > 0) & (negatives == 0)))


def no_positive_pair(fixture):
    """No row has a positive: no valid triple, no anchor-positive pair."""
    positives, _ = _others(fixture)
    return not np.any(positives > 0)


def has_valid_triple(fixture):
    """Some row has a positive and a negative (else every definition here gives 0)."""
    positives, negatives = _others(fixture)
    return bool(np.any((positives > 0) & (negatives > 0)))


def hinge_exactly_zero(fixture):
    """Some valid triple's hinge `d(i,j) - d(i,k) + margin` is exactly 0 (float64)."""
    labels, embeddings = _labels_embeddings(fixture)
    return bool(np.any(triple_hinges(labels, embeddings, fixture["loss"]) == 0.0))
