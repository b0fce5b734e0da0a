import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def seed_case():
    """The seed program's inputs, drawn with the pure-Python glibc rand()."""
    from tftriplet.glibc_rand import seed_program_inputs

    return seed_program_inputs()
