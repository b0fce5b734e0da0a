"""Per-row histograms (tftriplet/histograms.py) against NumPy's bincount, row by row: every
shape where the copies of a row's bins are fewer than `INTERLEAVE` (short rows, many bins),
sizes known when tracing or only when the graph runs, and the float result."""

import numpy as np
import pytest
import tensorflow as tf

from tftriplet.histograms import INTERLEAVE, bincount_flat_ids, flat_bin_ids, row_bincount


def expected(ids, num_bins):
    return np.stack([np.bincount(row, minlength=num_bins) for row in ids])


# (rows, columns, bins): full copies; fewer copies; one copy; more bins than columns
SHAPES = [(5, 200, 9), (3, 40, 9), (4, 9, 9), (2, 3, 17), (1, 1, 2)]


@pytest.mark.parametrize("rows, columns, num_bins", SHAPES)
def test_row_bincount_counts_each_row(rows, columns, num_bins):
    rng = np.random.default_rng(rows * columns + num_bins)
    # mostly one bin, as the kernels' places are, and every bin somewhere
    ids = np.where(rng.random((rows, columns)) < 0.7, 0, rng.integers(0, num_bins, (rows, columns)))
    want = expected(ids, num_bins)
    got = row_bincount(tf.constant(ids, tf.int32), num_bins)
    assert got.dtype == tf.int32
    np.testing.assert_array_equal(got, want)
    unknown = tf.TensorSpec([None, None], tf.int32)
    traced = tf.function(lambda x, n: row_bincount(x, n),
                         input_signature=[unknown, tf.TensorSpec((), tf.int32)])
    np.testing.assert_array_equal(traced(ids, num_bins), want)
    as_float = bincount_flat_ids(flat_bin_ids(tf.constant(ids, tf.int32), num_bins), num_bins,
                                 "float64")
    assert as_float.dtype == tf.float64
    np.testing.assert_array_equal(as_float, want)


def test_consecutive_columns_count_into_different_copies():
    ids = tf.zeros((2, 4 * INTERLEAVE), tf.int32)
    flat = flat_bin_ids(ids, 3).numpy()
    assert len(set(flat[0, :INTERLEAVE])) == INTERLEAVE  # one copy each
    assert set(flat[0]).isdisjoint(set(flat[1]))  # rows apart
    np.testing.assert_array_equal(row_bincount(ids, 3), [[4 * INTERLEAVE, 0, 0]] * 2)
