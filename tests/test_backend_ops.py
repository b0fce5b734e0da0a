"""backend_ops' searches under TensorFlow's XLA: bisection gives numpy.searchsorted's counts.

Under XLA `tf.searchsorted` compares every value with every entry: a cross-batch memory of
65536 rows would need tens of GB, so a compiled TensorFlow search bisects instead
(`backend_ops.binary_search`). Every length from 0, both sides, ties and values outside
the rows are compared with NumPy; a compiled run is checked to take the bisection.
"""

import numpy as np
import pytest
import tensorflow as tf

from tftriplet import backend_ops


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 33])
def test_compiled_searches_count_as_numpy_does(n, side):
    rng = np.random.default_rng(n)
    rows = np.sort(rng.integers(0, 6, size=(4, n)).astype("float32"), axis=1)
    values = rng.integers(-1, 7, size=(4, 9)).astype("float32")  # ties and both ends
    pairs = zip(rows, values, strict=True)
    expected = np.stack([np.searchsorted(r, v, side=side) for r, v in pairs])
    compiled_rows = tf.function(lambda r, v: backend_ops.row_searchsorted(r, v, side),
                                jit_compile=True)
    compiled_flat = tf.function(lambda r, v: backend_ops.sorted_searchsorted(r, v, side),
                                jit_compile=True)
    np.testing.assert_array_equal(compiled_rows(rows, values), expected)
    np.testing.assert_array_equal(compiled_flat(rows[0], values[0]), expected[0])


def test_compiled_tensorflow_bisects(monkeypatch):
    calls = []
    original = backend_ops.binary_search
    monkeypatch.setattr(backend_ops, "binary_search",
                        lambda *args: calls.append(1) or original(*args))
    rows, values = np.zeros((2, 5), "float32"), np.ones((2, 3), "float32")
    tf.function(lambda r, v: backend_ops.row_searchsorted(r, v), jit_compile=True)(rows, values)
    assert calls, "XLA must not compile tf.searchsorted (O(Q N) memory)"
    calls.clear()
    tf.function(lambda r, v: backend_ops.row_searchsorted(r, v))(rows, values)  # a graph
    assert not calls
