"""The counting kernels (tftriplet/engine/counting.py) against the per-triple form and the
float64 reference.

The reference (tftriplet_conformance/reference.py) is written as plain loops over
(i, j, k); the dense form is the definition as it reads. The sorted form must give the
same loss, fraction, counts and gradient: exactly equal counts wherever no hinge lies
within rounding of 0 ("ties away"), and exact tie semantics (a hinge of exactly 0 is not
positive) where the arithmetic is exact.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import (
    batch_all_sorted,
    pk_labels,
    run_in_backend,
    spy_on_kernels,
    statistics_and_gradient,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tftriplet
from tftriplet.distances import Distance, Points, resolve_distance
from tftriplet.engine import counting, fused
from tftriplet.engine import plan as plans
from tftriplet.engine.plan import SLOT_BUCKETS
from tftriplet_conformance import reference

#: The two ways to count (tftriplet/engine/counting.py): sort every row in full, or the class
#: kernel (each row's positives, searched or compared against every column).
ROW_SORTS = ("merged", "positives")


def loss_and_grad(
    labels, embeddings, margin, squared, method, dtype="float64", mode="eager", row_sort=None
):
    """Statistics and gradient by ``method``; ``row_sort`` forces the sorted form's way to
    count (``method`` must then be ``"sorted"``)."""
    if row_sort is not None:
        assert method == "sorted"

    def statistics(y, x):
        if row_sort is None:
            return tftriplet.batch_all_triplet_statistics(y, x, margin, squared, method=method)
        return batch_all_sorted(y, x, margin, squared, row_sort=row_sort)

    return statistics_and_gradient(statistics, labels, embeddings, mode, dtype)


@pytest.fixture(scope="session")
def case_clear_of_ties(random_case, clear_of_ties):
    """``case_clear_of_ties(seed, batch_size, dim, num_classes, margin, squared, tol, dtype)``:
    the first random case from ``seed`` on whose hinges rounding cannot flip a count."""

    def draw(seed, batch_size, dim, num_classes, margin, squared, tol, dtype):
        rng = np.random.default_rng(seed)
        while True:
            labels, x = random_case(rng, batch_size, dim, num_classes)
            x = x.astype(dtype).astype("float64")
            distance = resolve_distance(squared=squared)
            if clear_of_ties(labels, x, margin, distance, "batch_all", tol=tol):
                return labels, x

    return draw


def assert_same(got, want, rtol, atol):
    assert got["num_valid"] == want["num_valid"]
    assert got["num_positive"] == want["num_positive"]
    for key in ("loss", "fraction_positive", "gradient"):
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=atol, err_msg=key)


# --- random cases against the reference and the dense form ------------------------------


@pytest.mark.parametrize("row_sort", ROW_SORTS)
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize(
    "batch_size, num_classes, seed", [(5, 2, 0), (12, 3, 1), (40, 4, 2), (64, 16, 3)]
)
def test_sorted_matches_reference_float64(
    case_clear_of_ties, batch_size, num_classes, seed, squared, row_sort
):
    labels, x = case_clear_of_ties(seed, batch_size, 6, num_classes, 0.5, squared, 1e-9, "float64")
    want = reference.batch_all(labels, x, 0.5, resolve_distance(squared=squared))
    got = loss_and_grad(labels, x, 0.5, squared, "sorted", "float64", row_sort=row_sort)
    assert want["num_positive"] > 0
    assert_same(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("batch_size, num_classes, seed", [(12, 3, 4), (48, 5, 5), (96, 8, 6)])
def test_sorted_equals_dense_and_reference_float32(
    case_clear_of_ties, batch_size, num_classes, seed, squared
):
    labels, x = case_clear_of_ties(seed, batch_size, 16, num_classes, 0.2, squared, 1e-4, "float32")
    x32 = x.astype("float32")
    want = reference.batch_all(labels, x, 0.2, resolve_distance(squared=squared))
    sorted_ = loss_and_grad(labels, x32, 0.2, squared, "sorted", "float32")
    dense = loss_and_grad(labels, x32, 0.2, squared, "dense", "float32")
    assert_same(sorted_, dense, rtol=2e-5, atol=1e-6)
    assert_same(sorted_, want, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("row_sort", ROW_SORTS)
def test_sorted_equals_dense_at_a_few_hundred(row_sort):
    """B=300, float32: the dense form still fits (27M entries), counts in the millions.

    Not clear of ties: both forms decide a triple by the same float32 comparison,
    ``d_ik < fl(d_ij + m)``, on the same distances, so their counts are equal exactly.
    """
    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(75), 4)  # P x K: 75 classes of 4, k = 3 <= 300 // 8
    rng.shuffle(labels)
    x32 = (rng.normal(size=(300, 32)) / np.sqrt(32)).astype("float32")
    sorted_ = loss_and_grad(
        labels, x32, 0.2, False, "sorted", "float32", mode="function", row_sort=row_sort
    )
    dense = loss_and_grad(labels, x32, 0.2, False, "dense", "float32", mode="function")
    assert dense["num_positive"] > 1e5
    assert sorted_["num_positive"] == dense["num_positive"]
    assert sorted_["num_valid"] == dense["num_valid"]
    np.testing.assert_allclose(sorted_["loss"], dense["loss"], rtol=1e-5)
    np.testing.assert_allclose(sorted_["gradient"], dense["gradient"], rtol=1e-4, atol=1e-8)


@settings(max_examples=25, deadline=None)
@given(
    batch_size=st.integers(2, 40),
    num_classes=st.integers(1, 12),
    levels=st.integers(2, 6),
    margin=st.sampled_from([0.0, 0.25, 0.5, 1.0, 0.3]),
    seed=st.integers(0, 2**31 - 1),
)
def test_dense_and_both_row_sorts_count_alike_at_ties(
    batch_size, num_classes, levels, margin, seed
):
    """Embeddings on a coarse float32 grid: many distances coincide and many hinges are
    exactly 0 or within rounding of it. The dense form and both row sorts still count the
    same triples, since all three compare ``d_ik < fl(d_ij + m)`` on the same distances."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=batch_size)
    x = (rng.integers(0, levels, size=(batch_size, 3)) / 4.0).astype("float32")
    dense = loss_and_grad(labels, x, margin, False, "dense", "float32")
    for row_sort in ROW_SORTS:
        got = loss_and_grad(labels, x, margin, False, "sorted", "float32", row_sort=row_sort)
        assert got["num_positive"] == dense["num_positive"], row_sort
        assert got["num_valid"] == dense["num_valid"], row_sort
        np.testing.assert_allclose(got["loss"], dense["loss"], rtol=1e-5, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    batch_size=st.integers(1, 14),
    num_classes=st.integers(1, 5),
    dim=st.integers(1, 4),
    margin=st.floats(0.0, 1.5),
    squared=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_sorted_matches_reference_property(
    clear_of_ties, random_case, batch_size, num_classes, dim, margin, squared, seed
):
    rng = np.random.default_rng(seed)
    labels, x = random_case(rng, batch_size, dim, num_classes)
    assume(
        clear_of_ties(labels, x, margin, resolve_distance(squared=squared), "batch_all", tol=1e-9)
    )
    want = reference.batch_all(labels, x, margin, resolve_distance(squared=squared))
    for row_sort in ROW_SORTS:
        got = loss_and_grad(labels, x, margin, squared, "sorted", "float64", row_sort=row_sort)
        assert_same(got, want, rtol=1e-9, atol=1e-12)


# --- exact ties -------------------------------------------------------------------------


@pytest.mark.parametrize("margin", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exact_ties_follow_strict_hinge(margin, dtype):
    """Points on an integer line: every distance and hinge is an exact small integer, so
    many hinges are exactly 0 and must not count as positive.

    The gradient is compared with the reference, whose subgradient of max(h, 0) at h = 0
    is 0: the sorted form never differentiates a count, and the dense form's ``relu`` has
    gradient 0 at 0 (``maximum(h, 0)`` would pass 1 in TensorFlow, 1/2 in torch and JAX).
    """
    rng = np.random.default_rng(11)
    x = rng.integers(0, 5, size=(20, 1)).astype("float64")
    labels = rng.integers(0, 3, size=20)
    d = reference.distance_matrix(x)
    hinge = d[:, :, None] - d[:, None, :] + margin
    assert np.any(reference.triplet_mask(labels) & (hinge == 0.0))  # the case has ties
    want = reference.batch_all(labels, x, margin)
    dense = loss_and_grad(labels, x, margin, False, "dense", dtype)
    np.testing.assert_allclose(dense["gradient"], want["gradient"], rtol=1e-5, atol=1e-7)
    for row_sort in ROW_SORTS:
        got = loss_and_grad(labels, x, margin, False, "sorted", dtype, row_sort=row_sort)
        assert got["num_positive"] == want["num_positive"] == dense["num_positive"]
        assert got["num_valid"] == want["num_valid"]
        np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-6)
        np.testing.assert_allclose(got["gradient"], want["gradient"], rtol=1e-5, atol=1e-7)


def pair_weights(labels, d, margin, kernel):
    """`(W, positive triples)` of every row of `d` by one counting kernel."""
    table = counting.label_table(tf.constant(labels))
    rows = table.rows(tf.range(len(labels), dtype="int32"))
    k = int(np.max(np.unique(labels, return_counts=True)[1]))
    if kernel == "merged":
        w, per_row = counting.merged_weights(d, rows, margin)
    elif kernel == "fused":  # a distance whose product is d and whose slopes are W
        points = Points(tf.zeros((len(labels), 1), d.dtype))
        slots = plans.plan_batch_all(len(labels), mode="graph").slots_for(k)
        w, _, per_row = fused.fused_slopes(d, points, points, rows, table.order, margin,
                                           AsGiven(), False, slots)
    elif kernel == "slot":  # the compare kernel unrolled over a bucket of slots
        slots = plans.plan_batch_all(len(labels), mode="compiled").slots_for(k)
        w, per_row = counting.slot_weights(d, rows, table.order, margin, slots)
    else:
        w, per_row = getattr(counting, f"{kernel}_weights")(d, rows, table.order, margin, k)
    return w.numpy(), float(tf.reduce_sum(per_row))


class AsGiven(Distance):
    """The matrix product is the distances; the slopes are the weights."""

    def finish(self, product, points, rows, whole=False):
        return product

    def slopes(self, weights, distances):
        return weights


def loop_counts(labels, d, margin):
    """W written out as loops: +1 at (i, j) and -1 at (i, k) for each positive hinge."""
    n = len(labels)
    want = np.zeros_like(d)
    for i in range(n):
        for j in range(n):
            for k in range(n):
                if i != j and labels[i] == labels[j] and labels[k] != labels[i]:
                    if d[i, k] < d[i, j] + margin:
                        want[i, j] += 1
                        want[i, k] -= 1
    return want


KERNELS = ["merged", "search", "compare", "slot", "fused"]


@pytest.mark.parametrize("kernel", KERNELS)
def test_pair_weights_are_the_counts(random_case, kernel):
    """W from each kernel equals the counts c_ij and -r_ik written out as loops."""
    rng = np.random.default_rng(3)
    labels, x = random_case(rng, 15, 3, 3)
    d = reference.distance_matrix(x)
    w, num_positive = pair_weights(labels, tf.constant(d), 0.3, kernel)
    want = loop_counts(labels, d, 0.3)
    np.testing.assert_array_equal(w, want)
    assert num_positive == want.clip(min=0).sum()


@pytest.mark.parametrize("kernel", KERNELS)
def test_pair_weights_count_exact_ties_as_not_positive(kernel):
    """Points on an integer line with an integer margin: many hinges are exactly 0, and
    each kernel's W is still the loops' counts (a hinge of 0 counts nothing)."""
    rng = np.random.default_rng(12)
    x = rng.integers(0, 5, size=(15, 1)).astype("float64")
    labels = rng.integers(0, 3, size=15)
    d = reference.distance_matrix(x)
    want = loop_counts(labels, d, 1.0)
    hinge = d[:, :, None] - d[:, None, :] + 1.0
    assert np.any(reference.triplet_mask(labels) & (hinge == 0.0))  # the case has ties
    w, num_positive = pair_weights(labels, tf.constant(d), 1.0, kernel)
    np.testing.assert_array_equal(w, want)
    assert num_positive == want.clip(min=0).sum()


# --- edge cases -------------------------------------------------------------------------

EDGE_CASES = {
    "B=1": ([0], [[0.3, -1.0]]),
    "B=2 same class": ([4, 4], [[0.0, 1.0], [1.0, 0.0]]),
    "B=2 two classes": ([0, 1], [[0.0, 1.0], [1.0, 0.0]]),
    "one class": ([2] * 6, np.arange(12.0).reshape(6, 2)),
    "all distinct": (list(range(6)), np.arange(12.0).reshape(6, 2)),
    "collapsed batch": ([0, 0, 1, 1, 2, 2], np.ones((6, 3))),
    "duplicates": ([0, 0, 1, 1, 0], [[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [0.0, 0.0], [0.0, 0.0]]),
}


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases_finite_and_equal_to_reference(name, squared):
    labels, x = EDGE_CASES[name]
    x = np.asarray(x, dtype="float64")
    want = reference.batch_all(labels, x, 0.2, resolve_distance(squared=squared))
    for dtype in ("float32", "float64"):
        for row_sort in ROW_SORTS:
            got = loss_and_grad(labels, x, 0.2, squared, "sorted", dtype, row_sort=row_sort)
            assert np.isfinite(got["loss"]) and np.all(np.isfinite(got["gradient"]))
            assert_same(got, want, rtol=1e-6, atol=1e-6)


# --- graph modes ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["function", "xla"])
def test_tf_function_and_xla_agree_with_eager(random_case, mode):
    rng = np.random.default_rng(8)
    labels, x = random_case(rng, 50, 8, 5)
    x32 = x.astype("float32")
    eager = loss_and_grad(labels, x32, 0.2, False, "sorted", "float32")
    graph = loss_and_grad(labels, x32, 0.2, False, "sorted", "float32", mode=mode)
    assert_same(graph, eager, rtol=1e-5, atol=1e-7)


def test_unknown_static_batch_size_traces_the_sorted_form(random_case):
    fn = tf.function(
        lambda y, x: batch_all_sorted(y, x, 0.2, False)["loss"],
        input_signature=[
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None, 4], tf.float32),
        ],
    )
    rng = np.random.default_rng(9)
    labels, x = random_case(rng, 11, 4, 3)
    want = reference.batch_all(labels, x, 0.2)
    got = fn(tf.constant(labels.astype("int32")), tf.constant(x.astype("float32")))
    np.testing.assert_allclose(float(got), want["loss"], rtol=1e-5)


# --- every golden fixture, both kernels ---------------------------------------------------


def _hinge_batch_all_fixtures():
    from tftriplet_conformance.fixtures import load_fixtures

    return [
        f
        for f in load_fixtures()
        if f["loss"]["name"] == "batch_all"
        and not f["loss"].get("soft", False)
        and f["loss"].get("distance", "euclidean") in ("euclidean", "squared_euclidean")
    ]


@pytest.mark.parametrize("row_sort", ROW_SORTS)
def test_both_kernels_meet_every_batch_all_fixture(row_sort):
    """Every conformance fixture of the batch-all hinge, whatever method it names (most run
    dense or auto in the suite), through the sorted form with this kernel, in float32 and
    float64, held to the suite's own tolerances for TensorFlow."""
    from tftriplet.inputs import standardize_inputs
    from tftriplet_conformance.compare import compare

    fixtures = _hinge_batch_all_fixtures()
    assert len(fixtures) >= 40
    failures = []
    for fixture in fixtures:
        squared = fixture["loss"].get("distance") == "squared_euclidean"
        for dtype in ("float32", "float64"):
            labels = np.array(fixture["inputs"]["labels"], dtype=np.int64)
            x = tf.cast(tf.constant(np.array(fixture["inputs"]["embeddings"])), dtype)
            with tf.GradientTape() as tape:
                tape.watch(x)
                y, e = standardize_inputs(tf.constant(labels), x)
                stats = batch_all_sorted(
                    y, e, fixture["loss"]["margin"], squared, row_sort=row_sort
                )
            outputs = {k: float(v) for k, v in stats.items()}
            outputs["gradient"] = tape.gradient(stats["loss"], x).numpy().astype("float64")
            result = compare(fixture, outputs, "tensorflow", dtype)
            if not result.passed:
                failures.append((fixture["name"], dtype, result.failures))
    assert not failures, failures


# --- which row sort -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "num_classes, per_class, expected", [(12, 4, "search"), (4, 12, "merged")]
)
def test_auto_row_sort_eagerly(monkeypatch, num_classes, per_class, expected):
    calls = spy_on_kernels(monkeypatch)
    labels = pk_labels(num_classes, per_class)
    x = np.random.default_rng(1).normal(size=(len(labels), 5))
    want = reference.batch_all(labels, x, 0.3)
    got = loss_and_grad(labels, x, 0.3, False, "sorted", "float64", row_sort="auto")
    assert calls == [expected]
    assert_same(got, want, rtol=1e-9, atol=1e-12)


def test_auto_row_sort_in_a_graph_decides_when_it_runs(monkeypatch):
    """In a tf.function the class sizes are known only when it runs: every kernel the plan
    may choose is traced into a cond (the fused kernel once per bucket of slots, the search
    kernel above them, the whole-row sort), and one traced function serves every batch:
    classes of 4, 6, 12 and 20 (each fused bucket), 40 (searched) and above B / 8
    positives (merged), each the reference's numbers."""
    calls = spy_on_kernels(monkeypatch)
    fn = tf.function(
        lambda y, x: batch_all_sorted(y, x, 0.3, False)["loss"],
        input_signature=[tf.TensorSpec([None], tf.int64), tf.TensorSpec([None, 5], tf.float64)],
    )
    rng = np.random.default_rng(2)
    for labels in (pk_labels(12, 4), pk_labels(12, 6), pk_labels(8, 12), pk_labels(10, 20),
                   pk_labels(8, 40), pk_labels(4, 12), pk_labels(3, 7)):
        x = rng.normal(size=(len(labels), 5))
        want = reference.batch_all(labels, x, 0.3)
        np.testing.assert_allclose(float(fn(labels, x)), want["loss"], rtol=1e-9)
    # one trace, every branch
    assert sorted(calls) == ["fused"] * len(SLOT_BUCKETS) + ["merged", "search"]


def test_xla_counts_by_class_and_falls_back_when_it_runs(monkeypatch):
    """Under XLA the class sizes are known only when it runs: the class kernel and the
    whole-row sort are both compiled into a cond, and both give the reference's numbers;
    forced, the class kernel alone is compiled."""
    calls = spy_on_kernels(monkeypatch)
    rng = np.random.default_rng(3)
    for labels in (pk_labels(12, 4), pk_labels(4, 12)):
        x = rng.normal(size=(48, 5))
        want = reference.batch_all(labels, x, 0.3)
        got = loss_and_grad(labels, x, 0.3, False, "sorted", "float64", mode="xla",
                            row_sort="auto")
        assert_same(got, want, rtol=1e-9, atol=1e-12)
    assert sorted(set(calls)) == ["compare", "merged"]
    calls.clear()
    labels = pk_labels(4, 12)  # 11 positives per anchor: above B / 8, forced anyway
    x = rng.normal(size=(48, 5))
    got = loss_and_grad(labels, x, 0.3, False, "sorted", "float64", mode="xla",
                        row_sort="positives")
    assert calls == ["compare"] * (len(SLOT_BUCKETS) + 1)  # each bucket, the loop above
    assert_same(got, reference.batch_all(labels, x, 0.3), rtol=1e-9, atol=1e-12)


# --- method argument --------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["Sorted", "fast", "", None, 3])
def test_bad_method_is_a_value_error(bad):
    x, y = np.ones((3, 2), "float32"), [0, 0, 1]
    with pytest.raises(ValueError, match=r"method must be one of 'auto', 'dense', 'sorted'"):
        tftriplet.batch_all_triplet_loss(y, x, method=bad)
    with pytest.raises(ValueError, match="method must be one of"):
        tftriplet.batch_all_triplet_statistics(y, x, method=bad)
    with pytest.raises(ValueError, match="method must be one of"):
        tftriplet.BatchAllTripletLoss(method=bad)
    with pytest.raises(ValueError, match="method must be one of"):
        tftriplet.FractionPositiveTriplets(method=bad)


@pytest.mark.parametrize("method", ["auto", "dense", "sorted"])
def test_get_config_round_trip_keeps_method(method):
    loss = tftriplet.BatchAllTripletLoss(margin=0.3, method=method)
    config = loss.get_config()
    assert config["method"] == method
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, tftriplet.BatchAllTripletLoss)
    assert again.method == method and again.margin == 0.3
    metric = tftriplet.FractionPositiveTriplets(margin=0.3, method=method)
    assert type(metric).from_config(metric.get_config()).method == method


@pytest.mark.parametrize("method", ["dense", "sorted"])
def test_loss_class_and_metric_use_the_method(random_case, method):
    rng = np.random.default_rng(10)
    labels, x = random_case(rng, 40, 5, 4)
    want = reference.batch_all(labels, x, 0.2)
    x32 = tf.constant(x.astype("float32"))
    loss = tftriplet.BatchAllTripletLoss(margin=0.2, method=method)(labels, x32)
    np.testing.assert_allclose(float(loss), want["loss"], rtol=1e-5)
    metric = tftriplet.FractionPositiveTriplets(margin=0.2, method=method)
    metric.update_state(labels, x32)
    np.testing.assert_allclose(float(metric.result()), want["fraction_positive"], rtol=1e-6)


# --- other Keras backends ---------------------------------------------------------------

_BACKEND_SCRIPT = r"""
import json, sys
import numpy as np
import keras
from keras import ops
import tftriplet
from tftriplet import engine

def batch_all_sorted(y, x, margin, squared, row_sort="auto"):
    return engine.batch_all_statistics(ops.convert_to_tensor(y), ops.convert_to_tensor(x),
                                       margin, "euclidean", method="sorted", row_sort=row_sort)

case = json.loads(sys.argv[1])
labels = np.asarray(case["labels"], dtype="int64")
x = np.asarray(case["x"], dtype="float32")
backend = keras.backend.backend()
out = {}
for variant in ("dense", "sorted", "sorted:merged", "sorted:positives"):
    method, _, row_sort = variant.partition(":")
    def loss_fn(x):
        if row_sort:
            return batch_all_sorted(ops.convert_to_tensor(labels), x, 0.2, False, row_sort=row_sort)
        return tftriplet.batch_all_triplet_statistics(labels, x, 0.2, False, method=method)
    if backend == "jax":
        import jax
        f = lambda x: loss_fn(x)["loss"]
        f = jax.jit(f)
        loss, grad = jax.value_and_grad(f)(x)
        stats = loss_fn(x)
    elif backend == "torch":
        import torch
        xt = torch.tensor(x, requires_grad=True)
        stats = loss_fn(xt)
        stats["loss"].backward()
        loss, grad = stats["loss"], xt.grad
    out[variant] = {
        "backend": backend,
        "loss": float(loss),
        "num_positive": float(stats["num_positive"]),
        "num_valid": float(stats["num_valid"]),
        "gradient": np.asarray(ops.convert_to_numpy(grad)).tolist(),
    }
if backend == "jax":  # labels traced by jax.jit: the class sizes are unknown when tracing
    import jax
    traced = jax.jit(lambda y, x: batch_all_sorted(y, x, 0.2, False)["loss"])
    out["jit labels"] = {"loss": float(traced(labels, x))}
    forced = jax.jit(lambda y, x: batch_all_sorted(y, x, 0.2, False, row_sort="positives")["loss"])
    out["jit labels, positives"] = {"loss": float(forced(labels, x))}
print(json.dumps(out))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_sorted_under_other_keras_backends(case_clear_of_ties, backend):
    pytest.importorskip(backend)
    # B=64: also the blocked prefix count (row length a multiple of 32).
    labels, x = case_clear_of_ties(12, 64, 6, 8, 0.2, False, 1e-4, "float32")
    x32 = x.astype("float32")
    out = run_in_backend(backend, _BACKEND_SCRIPT, {"labels": labels.tolist(),
                                                    "x": x32.tolist()})
    want = reference.batch_all(labels, x32.astype("float64"), 0.2)
    for variant in ("dense", "sorted", "sorted:merged", "sorted:positives"):
        got = out[variant]
        assert got["backend"] == backend
        assert got["num_positive"] == want["num_positive"], variant
        assert got["num_valid"] == want["num_valid"], variant
        np.testing.assert_allclose(got["loss"], want["loss"], rtol=2e-5, err_msg=variant)
        np.testing.assert_allclose(
            got["gradient"], want["gradient"], rtol=1e-4, atol=1e-6, err_msg=variant
        )
    if backend == "jax":
        np.testing.assert_allclose(out["jit labels"]["loss"], want["loss"], rtol=2e-5)
        np.testing.assert_allclose(out["jit labels, positives"]["loss"], want["loss"], rtol=2e-5)


# --- the bench command ------------------------------------------------------------------


def test_bench_cli_prints_a_table_and_writes_json(tmp_path, capsys):
    from tftriplet_cli import main

    path = tmp_path / "bench.json"
    methods = "dense,sorted,pml"
    code = main(
        [
            "bench",
            "--sizes",
            "8,24",
            "--methods",
            methods,
            "--repeats",
            "1",
            "--dim",
            "8",
            "--per-class",
            "4",
            "--json",
            str(path),
            "--max-gb",
            "1",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "| method" in text and "peak RSS" in text
    results = json.loads(path.read_text())["results"]
    assert {(r["batch_size"], r["method"]) for r in results} == {
        (b, m) for b in (8, 24) for m in methods.split(",")
    }
    for b in (8, 24):
        by_method = {r["method"]: r for r in results if r["batch_size"] == b}
        assert by_method["dense"]["status"] == "ok", by_method["dense"]
        assert by_method["sorted"]["status"] == "ok", by_method["sorted"]
        assert by_method["sorted"]["peak_rss_bytes"] > 0
        # Same inputs in every subprocess: the methods must agree on the loss.
        np.testing.assert_allclose(
            by_method["sorted"]["loss"], by_method["dense"]["loss"], rtol=1e-5
        )
        if by_method["pml"]["status"] == "ok":
            np.testing.assert_allclose(
                by_method["pml"]["loss"], by_method["dense"]["loss"], rtol=1e-4
            )
        else:
            assert "not installed" in by_method["pml"]["reason"]
        assert f"\n{b} " in text or text.count(str(b)) >= 1


def test_bench_reports_which_sorted_kernel_ran(tmp_path, capsys):
    """4 per class: 3 positives per anchor is <= 24 // 8 but not <= 16 // 8."""
    from tftriplet_cli import main

    losses = {}
    for row_sort in ("auto", "merged"):
        path = tmp_path / f"{row_sort}.json"
        args = ["bench", "--sizes", "16,24", "--methods", "sorted", "--per-class", "4"]
        args += ["--dim", "8", "--repeats", "1", "--row-sort", row_sort, "--json", str(path)]
        assert main(args) == 0
        results = json.loads(path.read_text())["results"]
        kernels = {r["batch_size"]: r["kernel"] for r in results}
        assert kernels == (
            {16: "merged", 24: "fused"} if row_sort == "auto" else {16: "merged", 24: "merged"}
        )
        losses[row_sort] = [r["loss"] for r in results]
    assert "compares with the positives, one XLA op a block" in capsys.readouterr().out
    np.testing.assert_allclose(losses["auto"], losses["merged"], rtol=1e-6)


def test_bench_skips_dense_where_it_would_not_fit(capsys):
    from tftriplet_cli import main

    assert main(["bench", "--sizes", "4096", "--methods", "dense", "--max-gb", "1"]) == 0
    text = capsys.readouterr().out
    assert "would need 825 GB" in text  # 3 tensors of 4096^3 float32


def test_bench_rejects_unknown_methods():
    from tftriplet_cli import main

    with pytest.raises(SystemExit):
        main(["bench", "--methods", "dense,fastest"])


def test_sorted_refuses_what_it_does_not_compute_and_auto_falls_back(random_case):
    rng = np.random.default_rng(13)
    labels, x = random_case(rng, 40, 5, 4)
    x32 = x.astype("float32")
    for kwargs in ({"soft": True}, {"distance": "cosine"}):
        if kwargs.get("soft"):  # the sorted form computes the cosine hinge too (issue 12)
            with pytest.raises(ValueError, match="method='sorted' computes the hinge"):
                tftriplet.batch_all_triplet_loss(labels, x32, method="sorted", **kwargs)
        # B=40 > 32 would pick sorted; auto falls back to the dense form, same numbers.
        auto = tftriplet.batch_all_triplet_loss(labels, x32, method="auto", **kwargs)
        dense = tftriplet.batch_all_triplet_loss(labels, x32, method="dense", **kwargs)
        np.testing.assert_allclose(float(auto[0]), float(dense[0]), rtol=1e-6)


def test_the_positives_kernel_has_no_cubic_tensor(largest_tensor):
    """The positives-only kernel, forced (so not inside a cond, whose branches the check
    below would not see): loss + gradient, no tensor above B * B entries."""
    b = 48
    labels = tf.constant(pk_labels(12, 4), dtype="int64")

    @tf.function
    def value_and_grad(e):
        with tf.GradientTape() as tape:
            tape.watch(e)
            value = batch_all_sorted(labels, e, 0.2, False, row_sort="positives")["loss"]
        return value, tape.gradient(value, e)

    graph = value_and_grad.get_concrete_function(tf.TensorSpec((b, 8), "float32")).graph
    ops_ = graph.get_operations()
    assert any(op.type == "TopKV2" for op in ops_) and not any(op.type == "If" for op in ops_)
    assert largest_tensor(graph) <= b * b


@pytest.mark.parametrize("method, cubic", [("dense", True), ("sorted", False)])
def test_only_the_dense_form_has_a_cubic_tensor(largest_traced, method, cubic):
    """Every tensor in the traced loss + gradient graph of the sorted form has at most
    B * B elements (the check sees the dense form's (B, B, B) tiles)."""
    b = 48
    labels = tf.constant(np.arange(b) % 6, dtype="int64")

    def value_and_grad(e):
        with tf.GradientTape() as tape:
            tape.watch(e)
            value = tftriplet.batch_all_triplet_loss(labels, e, method=method)[0]
        return value, tape.gradient(value, e)

    largest = largest_traced(value_and_grad, tf.TensorSpec((b, 8), "float32"))
    assert (largest >= b**3) if cubic else (largest <= b * b)
