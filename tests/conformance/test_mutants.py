"""Mutation tests of the fixtures: every plausible mistake in an implementation fails at
least one fixture, at the runner's float64 tolerances and through its comparison code.

The mutants are in `mutants.py`, the restated contract they start from in
`contract_restated.py`.
"""

from __future__ import annotations

import warnings

import pytest
from contract_restated import Contract, killers
from mutants import MUTANTS

from tftriplet_conformance.fixtures import load_fixtures

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
