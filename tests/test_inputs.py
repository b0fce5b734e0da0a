"""Input checks: integer labels that a backend would narrow (JAX without x64) are refused,
not wrapped; `check_class_ids`, the one check of class ids given as arrays, accepts exactly
`(N,)` or `(N, 1)` integers and names what it refuses."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tftriplet.inputs import check_class_ids

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


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8", "uint64"])
def test_class_ids_as_a_vector_or_a_column_come_back_as_the_same_vector(dtype):
    ids = np.array([3, 1, 3, 0, 7], dtype=dtype)
    for given in (ids, ids[:, None]):
        checked = check_class_ids(given, "y", num_rows=5)
        assert checked.shape == (5,) and checked.dtype == np.dtype(dtype)
        assert np.array_equal(checked, ids)
    assert np.array_equal(check_class_ids(ids.tolist(), "y"), ids)  # a list of ints too


def test_class_ids_from_a_backend_tensor_are_read_as_they_are():
    ids = np.array([[4], [2], [4]], dtype="int32")
    checked = check_class_ids(keras.ops.convert_to_tensor(ids), "y")
    assert checked.dtype == np.int32 and np.array_equal(checked, ids[:, 0])


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.eye(3)[[0, 1, 2, 1]].astype(int), r"y must be class ids in a 1-D.*\(4, 3\).*argmax"),
        (np.zeros((4, 1, 1), dtype=int), r"y must be class ids in a 1-D.*got shape \(4, 1, 1\)\.$"),
        (np.int64(3), r"got shape \(\)"),
    ],
)
def test_class_ids_of_another_shape_are_refused_with_the_shape(labels, match):
    with pytest.raises(ValueError, match=match):
        check_class_ids(labels, "y")


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.array([0.0, 1.0, 1.0]), r"y must hold integer class ids; got dtype float64.*astype"),
        (np.array([True, False, True]), r"got dtype bool\.$"),
        (np.array(["a", "b", "a"]), r"got dtype <U1\.$"),
        (np.array([0, 1, None], dtype=object), r"got dtype object\.$"),
    ],
)
def test_class_ids_that_are_not_integers_are_refused_never_cast(labels, match):
    with pytest.raises(TypeError, match=match):
        check_class_ids(labels, "y")


def test_the_row_count_is_checked_against_the_data_when_given():
    ids = np.array([0, 1, 0, 1])
    assert np.array_equal(check_class_ids(ids[:, None], "y", num_rows=4, rows="x"), ids)
    assert np.array_equal(check_class_ids(ids, "y"), ids)  # no data, no count
    with pytest.raises(ValueError, match=r"x and y must have one row per label: x has N=5 rows.*"
                       r"got shape \(4,\)"):
        check_class_ids(ids, "y", num_rows=5, rows="x")


def test_ids_beyond_int32_are_refused_only_where_they_would_be_narrowed():
    low, high = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    edges = np.array([low, 0, high], dtype=np.int64)
    assert np.array_equal(check_class_ids(edges, "y", int32=True), edges)
    wide = np.array([0, 2**32, 0, 2**32], dtype=np.int64)  # both wrap to 0 as int32
    assert np.array_equal(check_class_ids(wide, "y"), wide)
    with pytest.raises(ValueError, match=r"fit in int32.*\[0, 4294967296\].*merge classes"):
        check_class_ids(wide, "y", int32=True)
    for outside in ([high + 1], [low - 1]):
        with pytest.raises(ValueError, match="fit in int32"):
            check_class_ids(np.array(outside, dtype=np.int64), "y", int32=True)
    with pytest.raises(ValueError, match="fit in int32"):
        check_class_ids(np.array([2**63], dtype=np.uint64), "y", int32=True)
    assert check_class_ids(np.zeros(0, dtype=np.int64), "y", int32=True).shape == (0,)
