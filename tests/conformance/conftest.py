import os
import subprocess
import sys
from pathlib import Path

import pytest
from fresh_expect import session_seed

REPO = Path(__file__).resolve().parents[2]


def _run_conformance(*args, cwd=REPO, path=()):
    """``python -m tftriplet_conformance ARGS`` in ``cwd``, with ``path`` (folders, e.g. of
    a plugin) before the checkout on ``PYTHONPATH``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, path), str(REPO)])}
    return subprocess.run(
        [sys.executable, "-m", "tftriplet_conformance", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )


@pytest.fixture(scope="session")
def run_conformance():
    """``run_conformance(*args, cwd=REPO, path=())``: the runner from the command line."""
    return _run_conformance


def pytest_report_header(config):
    seed = session_seed()
    return (f"conformance fresh cases: seed {seed} (CONFORMANCE_FRESH_SEED={seed} draws them "
            "again, =random other ones)")
