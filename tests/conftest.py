import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# helpers.py and mining_helpers.py are shared by the test folders
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Deterministic examples, so a CI run is reproducible (and a failure re-runs the same way);
# HYPOTHESIS_PROFILE=explore draws fresh examples for a local search.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def seed_case():
    """The seed program's inputs, drawn with the pure-Python glibc rand()."""
    from tftriplet_conformance.glibc_rand import seed_program_inputs

    return seed_program_inputs()


# --- which tests ran: every tox environment writes a report, tests/unrun.py joins them ----

_REPORT = os.environ.get("TFTRIPLET_TEST_REPORT")
_collected = []
_outcomes = {}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Record every collected test before ``-m``/``-k`` deselect any."""
    _collected.extend(item.nodeid for item in items)


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        previous = _outcomes.get(report.nodeid)
        if previous != "failed":  # a failure in any phase sticks
            _outcomes[report.nodeid] = report.outcome


def pytest_collectreport(report):
    if report.outcome == "skipped":  # a whole module skipped at import
        _outcomes[report.nodeid] = "skipped"


def pytest_sessionfinish(session, exitstatus):
    if _REPORT:
        Path(_REPORT).parent.mkdir(parents=True, exist_ok=True)
        payload = {"collected": sorted(set(_collected)), "outcomes": _outcomes}
        Path(_REPORT).write_text(json.dumps(payload, indent=1, sort_keys=True))
