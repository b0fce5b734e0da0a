import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# helpers.py and mining_helpers.py are shared by the test folders
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def seed_case():
    """The seed program's inputs, drawn with the pure-Python glibc rand()."""
    from tftriplet_conformance.glibc_rand import seed_program_inputs

    return seed_program_inputs()

from hypothesis import settings  # noqa: E402

# Deterministic examples, so a CI run is reproducible (and a failure re-runs the same way);
# HYPOTHESIS_PROFILE=explore draws fresh examples for a local search.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
