"""The conformance suite under pytest: every backend on every fixture, one test each (the
fixtures of the optional features included, for the backends that claim them), and on the
session's fresh cases (`tftriplet_conformance.fresh`; their seed is fixed, see
fresh_expect.py, and printed in the header).

``CONFORMANCE_BACKENDS`` (comma separated) selects the backends, as tox does per
environment; by default all run, and an unavailable backend is skipped with its reason
(``CONFORMANCE_STRICT=1`` makes that a failure). Each backend runs all fixtures once per
session (one subprocess per Keras backend); the tests then read its results.
"""

from __future__ import annotations

import os

import pytest
from fresh_expect import session_seed

from tftriplet_conformance import fresh_rules, optional
from tftriplet_conformance.adapters import all_adapters, backend_names, own_adapters
from tftriplet_conformance.fixtures import load_fixtures
from tftriplet_conformance.fresh import draw, is_fresh
from tftriplet_conformance.runner import FAIL, NA, XPASS, Outcome, format_report, run_backend

FIXTURES = load_fixtures(with_optional=True)
FRESH = draw(FIXTURES, session_seed())
CASES = FIXTURES + list(FRESH.fixtures)
SELECTED = [
    b.strip()
    for b in os.environ.get("CONFORMANCE_BACKENDS", ",".join(backend_names())).split(",")
    if b.strip()
]
STRICT = os.environ.get("CONFORMANCE_STRICT") == "1"


@pytest.fixture(scope="session")
def backend_results(request):
    """``backend -> {fixture: Cell}`` or ``backend -> reason`` (unavailable), computed lazily.

    At the end of the session the runner's matrix of the backends that ran is written to
    the terminal, as ``python -m conformance`` prints it.
    """
    adapters = {a.name: a for a in all_adapters()}
    cache = {}

    def get(name):
        if name not in cache:
            adapter = adapters[name]
            ok, reason = adapter.available()
            cache[name] = _run(adapter) if ok else reason
        return cache[name]

    yield get
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    ran = {b: r for b, r in cache.items() if not isinstance(r, str)}
    matrix = {b: {n: c for n, c in r.items() if not is_fresh(n)} for b, r in ran.items()}
    fresh = {b: {n: c for n, c in r.items() if is_fresh(n)} for b, r in ran.items()}
    skipped = {b: r for b, r in cache.items() if isinstance(r, str)}
    outcome = Outcome(matrix, skipped, fresh=FRESH, fresh_matrix=fresh)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is not None and capture is not None and cache:
        with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
            reporter.write_line("")
            for line in format_report(FIXTURES, outcome).splitlines():
                reporter.write_line(line)


def _run(adapter):
    """`{name: Cell}` of the fixtures and the fresh cases, the latter held to the former as
    the runner holds them (`fresh_rules`)."""
    cells = run_backend(adapter, CASES)
    fresh = {case["name"]: cells[case["name"]] for case in FRESH.fixtures}
    fresh_rules.hold(cells, fresh, FIXTURES, FRESH.fixtures)
    return {**cells, **fresh}


def test_selected_backends_are_known():
    assert set(SELECTED) <= set(backend_names()), SELECTED


def _implements(adapter, fixture):
    """Whether `adapter` claims the fixture's optional feature (if any) and supports it."""
    feature = optional.feature_of(fixture)
    return (feature is None or feature in adapter.features) and adapter.supports(fixture)[0]


def _supported_pairs():
    """(backend, case) pairs the backend implements, the fresh cases too; the others are
    n/a in the matrix.
    A backend that is not available here gets every fixture (each one skips, or fails
    with ``CONFORMANCE_STRICT=1``)."""
    adapters = {a.name: a for a in all_adapters()}
    return [
        pytest.param(backend, fixture, id=f"{fixture['name']}-{backend}")
        for backend in SELECTED
        for fixture in CASES
        if not adapters[backend].available()[0] or _implements(adapters[backend], fixture)
    ]


def test_the_own_backends_but_c_claim_the_memory():
    """The project's backends run the memory fixtures; the C program does not claim them."""
    claims = {adapter.name: adapter.features for adapter in own_adapters()}
    assert claims == {"numpy": ("memory",), "c": (), "tensorflow": ("memory",),
                      "jax": ("memory",), "torch": ("memory",)}


@pytest.mark.parametrize("backend, fixture", _supported_pairs())
def test_backend_matches_fixture(backend, fixture, backend_results):
    results = backend_results(backend)
    if isinstance(results, str):
        if STRICT:
            pytest.fail(f"backend {backend} is not available: {results}")
        pytest.skip(f"backend {backend} is not available: {results}")
    cell = results[fixture["name"]]
    again = (f" (a fresh case of seed {FRESH.seed}: CONFORMANCE_FRESH_SEED={FRESH.seed} draws "
             "it again)" if is_fresh(fixture["name"]) else "")
    assert cell.status not in (FAIL, XPASS, NA), "\n".join([cell.status + again, *cell.details])
