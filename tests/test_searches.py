"""Searches along rows: bisection under TensorFlow's XLA and comparisons under PyTorch give
numpy.searchsorted's counts, and `row_search_counts` the counts below each key.

Under XLA `tf.searchsorted` compares every value with every entry: a cross-batch memory of
65536 rows would need tens of GB, so a compiled TensorFlow search bisects instead
(`searches.binary_search`). Under PyTorch, rows of up to `TORCH_COMPARE_MAX_KEYS` keys
are counted by comparisons. Every length from 0, both sides, ties and values outside the
rows are compared with NumPy; a compiled run is checked to take the bisection.
"""

import numpy as np
import pytest
import tensorflow as tf
from helpers import run_in_backend

from tftriplet import searches


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 33])
def test_compiled_searches_count_as_numpy_does(n, side):
    rng = np.random.default_rng(n)
    rows = np.sort(rng.integers(0, 6, size=(4, n)).astype("float32"), axis=1)
    values = rng.integers(-1, 7, size=(4, 9)).astype("float32")  # ties and both ends
    pairs = zip(rows, values, strict=True)
    expected = np.stack([np.searchsorted(r, v, side=side) for r, v in pairs])
    compiled_rows = tf.function(lambda r, v: searches.row_searchsorted(r, v, side),
                                jit_compile=True)
    compiled_flat = tf.function(lambda r, v: searches.sorted_searchsorted(r, v, side),
                                jit_compile=True)
    np.testing.assert_array_equal(compiled_rows(rows, values), expected)
    np.testing.assert_array_equal(compiled_flat(rows[0], values[0]), expected[0])


def test_compiled_tensorflow_bisects(monkeypatch):
    calls = []
    original = searches.binary_search
    monkeypatch.setattr(searches, "binary_search",
                        lambda *args: calls.append(1) or original(*args))
    rows, values = np.zeros((2, 5), "float32"), np.ones((2, 3), "float32")
    tf.function(lambda r, v: searches.row_searchsorted(r, v), jit_compile=True)(rows, values)
    assert calls, "XLA must not compile tf.searchsorted (O(Q N) memory)"
    calls.clear()
    tf.function(lambda r, v: searches.row_searchsorted(r, v))(rows, values)  # a graph
    assert not calls


_TORCH_SEARCH = """
import json, sys
import numpy as np, torch
from tftriplet import searches
case = json.loads(sys.argv[1])
rows = torch.tensor(np.array(case["rows"], "float32").reshape(case["shape"]))
values = torch.tensor(np.array(case["values"], "float32"))
got = searches.row_searchsorted(rows, values, case["side"])
print(json.dumps({"dtype": str(got.dtype), "counts": got.tolist(),
                  "limit": searches.TORCH_COMPARE_MAX_KEYS}))
"""


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("n", [0, 1, 8, 64, 65])
def test_torch_searches_count_as_numpy_does(n, side):
    """Both sides of `TORCH_COMPARE_MAX_KEYS` (comparisons up to 64 keys, torch.searchsorted
    above), with ties, infinite keys and values, and NaN values (after every key)."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(100 + n)
    rows = np.sort(rng.integers(0, 6, size=(4, n)).astype("float32"), axis=1)
    rows[:, n - n // 4:] = np.inf  # the search kernel's keys of non-positives
    values = rng.integers(-1, 7, size=(4, 9)).astype("float32")
    values[0, :3] = [np.nan, np.inf, -np.inf]
    expected = np.stack([np.searchsorted(r, v, side=side)
                         for r, v in zip(rows, values, strict=True)])
    case = {"rows": rows.ravel().tolist(), "shape": list(rows.shape),
            "values": values.tolist(), "side": side}
    out = run_in_backend("torch", _TORCH_SEARCH, case)
    assert out["dtype"] == "torch.int32"
    assert (n <= out["limit"]) == (n != 65)  # both paths are taken
    np.testing.assert_array_equal(np.array(out["counts"]), expected)


def _search_counts_case(n, seed, few=False):
    """Sorted keys `(3, n)` with ties and +inf, values `(3, 2100)` (more than 255 words of
    8 a row, not a multiple of 8) with ties, NaN and infinities, a start per row and a
    counted mask of the columns; with `few`, the first `n` values (no more than the keys)
    and a counted mask per row."""
    rng = np.random.default_rng(seed)
    keys = np.sort(rng.integers(0, 6, size=(3, n)).astype("float32"), axis=1)
    keys[:, n - n // 4:] = np.inf
    values = rng.integers(-1, 7, size=(3, 2100)).astype("float32")
    values[0, :3] = [np.nan, np.inf, -np.inf]
    values[1, :] = 2.0  # one row of one value: 2100 counted below a key
    start = rng.integers(-5, 5, size=(3, 1)).astype("int32")
    counted = rng.random(2100) < 0.7
    if few:
        values, counted = values[:, :n], rng.random((3, n)) < 0.7
    return keys, values, start, counted


def _expected_search_counts(keys, values, start, counted):
    """`row_search_counts` in NumPy, `below` by comparing each value with each key."""
    s = np.stack([np.searchsorted(k, v, side="right") for k, v in zip(keys, values,
                                                                          strict=True)])
    mask = np.ones(values.shape, bool) if counted is None else counted
    mask = np.broadcast_to(mask, values.shape)[:, None, :]
    below = ((values[:, None, :] < keys[:, :, None]) & mask).sum(axis=2)
    return s + (0 if start is None else start), below


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("n", [0, 1, 8, 33])
def test_search_counts_are_numpys(n, masked):
    keys, values, start, counted = _search_counts_case(n, seed=n)
    counted = counted if masked else None
    start = start if masked else None
    expected_s, expected_below = _expected_search_counts(keys, values, start, counted)
    for run in (lambda f: f(), lambda f: tf.function(f)()):
        s, below = run(lambda: searches.row_search_counts(keys, values, "float32", start=start,
                                                          counted=counted))
        assert s.dtype == tf.float32 and below.dtype == tf.int32
        np.testing.assert_array_equal(s, expected_s)
        np.testing.assert_array_equal(below, expected_below)


_TORCH_SEARCH_COUNTS = """
import json, sys
import numpy as np, torch
from tftriplet import searches
case = json.loads(sys.argv[1])
keys = torch.tensor(np.array(case["keys"], "float32").reshape(case["shape"]))
values = torch.tensor(np.array(case["values"], "float32"))
start = None if case["start"] is None else torch.tensor(case["start"], dtype=torch.int32)
counted = None if case["counted"] is None else torch.tensor(case["counted"])
s, below = searches.row_search_counts(keys, values, "float32", start=start, counted=counted)
print(json.dumps({"dtypes": [str(s.dtype), str(below.dtype)], "s": s.tolist(),
                  "below": below.tolist(), "limit": searches.TORCH_COMPARE_MAX_KEYS}))
"""


@pytest.mark.parametrize("few", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("n", [0, 8, 64, 65])
def test_torch_search_counts_are_numpys(n, masked, few):
    """Both sides of `TORCH_COMPARE_MAX_KEYS`: comparisons into reused buffers and rows
    counted as int64 words up to 64 keys, the search and histogram above; and no more
    values than keys, every key compared at once."""
    pytest.importorskip("torch")
    keys, values, start, counted = _search_counts_case(n, seed=200 + n, few=few)
    counted = counted if masked else None
    start = start if masked else None
    expected_s, expected_below = _expected_search_counts(keys, values, start, counted)
    case = {"keys": keys.ravel().tolist(), "shape": list(keys.shape),
            "values": values.tolist(), "start": None if start is None else start.tolist(),
            "counted": None if counted is None else counted.tolist()}
    out = run_in_backend("torch", _TORCH_SEARCH_COUNTS, case)
    assert out["dtypes"] == ["torch.float32", "torch.int32"]
    assert (n <= out["limit"]) == (n != 65)  # both paths are taken
    np.testing.assert_array_equal(np.array(out["s"]), expected_s)
    np.testing.assert_array_equal(np.array(out["below"]), expected_below)
