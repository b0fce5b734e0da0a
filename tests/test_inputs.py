"""Integer labels that a backend would narrow (JAX without x64) are refused, not wrapped."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import numpy as np, tftriplet
x = np.array([[0.0], [1.0], [0.5], [2.0]], dtype="float32")
small = np.array([7, 7, 9, 9], dtype="int64")
print("small", float(tftriplet.batch_all_triplet_loss(small, x)[0]))
big = np.array([2**40, 2**40, 2**40 + 2**32, 2**40 + 2**32], dtype="int64")
try:
    tftriplet.batch_all_triplet_loss(big, x)
except ValueError as err:
    print("refused", "jax_enable_x64" in str(err))
"""


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_jax_without_x64_refuses_labels_beyond_int32():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_ENABLE_X64="0", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    # labels 7/9 fit in int32: computed as usual (0.5 - 0.5 + 0.2 hinges etc. are positive)
    assert lines[0].startswith("small ") and float(lines[0].split()[1]) > 0
    assert lines[1] == "refused True"
