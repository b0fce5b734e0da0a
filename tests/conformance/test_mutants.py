"""Mutation tests of the fixtures: every plausible mistake in an implementation fails at
least one fixture, at the runner's float64 tolerances and through its comparison code.

The mutants are in `mutants.py`, the restated contract they start from in
`contract_restated.py`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from contract_restated import Contract, killers
from mutants import MUTANTS

from tftriplet_conformance.fixtures import load_fixtures
from tftriplet_conformance.variants import options_of

FIXTURES = load_fixtures()
BY_NAME = {f["name"]: f for f in FIXTURES}


@pytest.fixture(autouse=True)
def _quiet_numpy():
    """Some mutants divide 0 by 0 or overflow on purpose: their NaN and inf are the point."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def test_the_restated_contract_passes_every_fixture():
    """Else a mutant's failure could be the restatement's own."""
    assert killers(Contract(), FIXTURES) == []


def _last(row, candidates, extreme):
    """The last of the candidates whose distance is `extreme` (np.min or np.max) of them."""
    return candidates[np.flatnonzero(row[candidates] == extreme(row[candidates]))[-1]]


class LastOfEquallyHard(Contract):
    """Breaks ties between equally hard candidates the other way (the last, not the first)."""

    def hardest_positive(self, row, mask):
        return _last(row, np.flatnonzero(mask), np.max)

    def hardest_negative(self, row, mask):
        return _last(row, np.flatnonzero(mask), np.min)

    def semi_hard_negative(self, row, mask, d_ap, loss):
        farther = mask & self.farther(row, d_ap, loss)
        if farther.any():
            return _last(row, np.flatnonzero(farther), np.min)
        return _last(row, np.flatnonzero(mask), np.max)


def _chosen(implementation, fixture):
    """The (anchor, positive, negative) triples a mining strategy chooses."""
    loss = options_of(fixture["loss"])
    e = implementation.embeddings(fixture["inputs"]["embeddings"])
    d = implementation.distances(e, loss["distance"])
    labels = implementation.labels(fixture["inputs"]["labels"])
    triples, _ = getattr(implementation, loss["name"])(labels, d, loss)
    return sorted(zip(*(t.tolist() for t in triples), strict=True))


def test_ties_between_equally_hard_candidates_are_free():
    """The README leaves the choice among equally hard candidates free: the fixtures accept
    either way of breaking such ties, including fixtures where the choice differs."""
    assert killers(LastOfEquallyHard(), FIXTURES) == []
    mining = [f for f in FIXTURES if f["loss"]["name"] != "batch_all"]
    first, last = Contract(), LastOfEquallyHard()
    differ = [f["name"] for f in mining if _chosen(first, f) != _chosen(last, f)]
    assert differ, "no fixture has a tie between equally hard candidates: this checks nothing"


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda cls: cls.__name__)
def test_every_mutant_fails_a_fixture(mutant):
    found = killers(mutant(), FIXTURES)
    assert found, f"no fixture catches: {mutant.__doc__}; add one that pins it"
    assert mutant.killed_by in found, (mutant.killed_by, found)


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda cls: cls.__name__)
def test_every_mutant_says_what_it_gets_wrong_and_what_pins_it(mutant):
    description = mutant.__doc__.strip()
    assert "\n" not in description and len(description) <= 100, description
    assert mutant.killed_by in BY_NAME


def test_the_mutants_include_every_mistake_the_issue_names():
    """Issue 18: the JavaScript implementer's three undetected mistakes, batch-all counting
    h >= 0, and the PyTorch implementer's six (valid triples, i == j, off by one, scale)."""
    named = {cls.__name__ for cls in MUTANTS}
    assert {
        "SemiHardNotStrict",
        "SoftBatchHardCountsEveryAnchor",
        "LabelsWrappedToInt32",
        "BatchAllCountsHingeZero",
        "BatchAllDividesByValid",
        "KeepsSelfAsPositive",
        "LastRowNeverAnAnchor",
        "FirstRowNeverANegative",
        "GradientTwiceTooLarge",
    } <= named
