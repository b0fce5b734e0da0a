"""The driver (tftriplet/engine/blocks.py): batch-all in anchor blocks, the sorted cosine
form, the blocked soft margin, and the same answer from every method on an empty batch and
on non-finite embeddings.

Everything is compared with the float64 loop reference (tftriplet_conformance/reference.py)
or with the dense form on the same float32 inputs; no expected value is written by hand.
"""


import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import batch_all_sorted, run_in_backend, statistics_and_gradient
from hypothesis import given, settings
from hypothesis import strategies as st

import tftriplet
from tftriplet.engine import plan as plans
from tftriplet.engine.plan import DENSE_MAX_BATCH, check_anchor_block, plan_batch_all
from tftriplet_conformance import reference

DISTANCES = ("euclidean", "squared_euclidean", "cosine")


def run(labels, x, margin=0.3, mode="eager", dtype="float64", **options):
    """Statistics and gradient of ``batch_all_triplet_statistics(**options)``."""
    return statistics_and_gradient(
        lambda y, e: tftriplet.batch_all_triplet_statistics(y, e, margin, **options),
        labels, x, mode, dtype,
    )


def want(labels, x, margin=0.3, distance="euclidean", soft=False):
    return reference.triplet_loss(
        labels, np.asarray(x, "float64"), strategy="batch_all", margin=margin,
        distance=distance, soft=soft,
    )


def assert_same(got, expected, rtol=1e-9, atol=1e-12):
    assert got["num_valid"] == expected["num_valid"]
    assert got["num_positive"] == expected["num_positive"]
    for key in ("loss", "fraction_positive", "gradient"):
        np.testing.assert_allclose(got[key], expected[key], rtol=rtol, atol=atol, err_msg=key)


# --- blocks against the reference ------------------------------------------------------


@pytest.mark.parametrize("block", [1, 3, 5, 13, 40])  # 13 = B; 3, 5 do not divide B
@pytest.mark.parametrize("distance", DISTANCES)
def test_sorted_blocks_match_the_reference(random_case, distance, block):
    rng = np.random.default_rng(21)
    labels, x = random_case(rng, 13, 4, 3)
    got = run(labels, x, distance=distance, method="sorted", anchor_block=block)
    assert_same(got, want(labels, x, distance=distance))


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("block", [1, 4, 11, 20])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_dense_blocks_match_the_reference(random_case, distance, block, soft):
    """method="dense" with anchor_block: every triple of a block of anchors at a time."""
    rng = np.random.default_rng(22)
    labels, x = random_case(rng, 11, 3, 3)
    got = run(labels, x, distance=distance, soft=soft, method="dense", anchor_block=block)
    assert_same(got, want(labels, x, distance=distance, soft=soft))


@pytest.mark.parametrize("mode", ["function", "unknown", "xla", "xla unknown"])
@pytest.mark.parametrize("distance, soft", [("euclidean", False), ("cosine", False),
                                            ("euclidean", True)])
def test_blocks_in_graphs_match_the_reference(random_case, mode, distance, soft):
    """In a tf.function (also with an unknown batch size: the block count is a tensor and
    the loop a while_loop) and under XLA."""
    rng = np.random.default_rng(23)
    labels, x = random_case(rng, 10, 3, 3)
    method = "dense" if soft else "sorted"
    got = run(labels, x, mode=mode, distance=distance, soft=soft, method=method,
              anchor_block=4)
    assert_same(got, want(labels, x, distance=distance, soft=soft))


def test_auto_block_above_the_whole_matrix_limit_is_exact(random_case, monkeypatch):
    """The automatic path: with the budget lowered, a batch of 40 goes in blocks of 8."""
    monkeypatch.setattr(plans, "COUNT_BLOCK_ENTRIES", 8 * 40)
    assert plan_batch_all(40, mode="eager").block_size(40, 40) == 8
    rng = np.random.default_rng(24)
    labels, x = random_case(rng, 40, 5, 4)
    got = run(labels, x, method="auto")
    assert_same(got, want(labels, x))
    got = run(labels, x, method="auto", mode="unknown")
    assert_same(got, want(labels, x))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_anchor_block_is_validated(bad):
    x, y = np.ones((4, 2), "float32"), [0, 0, 1, 1]
    with pytest.raises(ValueError, match="anchor_block must be"):
        tftriplet.batch_all_triplet_loss(y, x, anchor_block=bad)
    with pytest.raises(ValueError, match="anchor_block must be"):
        tftriplet.batch_all_triplet_statistics(y, x, anchor_block=bad)
    with pytest.raises(ValueError, match="anchor_block must be"):
        tftriplet.BatchAllTripletLoss(anchor_block=bad)
    assert check_anchor_block(None) is None and check_anchor_block(np.int64(7)) == 7


def test_anchor_block_round_trips_through_get_config():
    loss = tftriplet.BatchAllTripletLoss(margin=0.3, anchor_block=64)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert again.anchor_block == 64
    assert tftriplet.BatchAllTripletLoss().get_config()["anchor_block"] is None


@pytest.mark.parametrize("distance, soft, limit", [
    ("euclidean", False, 8 * 48),
    ("cosine", False, 8 * 48),
    ("euclidean", True, 8 * 48 * 48),
])
def test_no_tensor_beyond_a_block(largest_traced, distance, soft, limit):
    """Loss + gradient in blocks of 8 anchors: no tensor above ``8 B`` entries (``8 B^2``
    with the soft margin), where the whole-matrix forms have ``B^2`` (``B^3``)."""
    b = 48
    labels = tf.constant(np.arange(b) % 6)
    method = "dense" if soft else "sorted"

    def value_and_grad(e):
        with tf.GradientTape() as tape:
            tape.watch(e)
            value = tftriplet.batch_all_triplet_loss(
                labels, e, distance=distance, soft=soft, method=method, anchor_block=8
            )[0]
        return value, tape.gradient(value, e)

    assert largest_traced(value_and_grad, tf.TensorSpec((b, 4), "float32")) <= limit


def test_auto_soft_margin_above_the_dense_limit_has_no_cubic_tensor(largest_traced):
    b = 48
    assert b > DENSE_MAX_BATCH
    labels = tf.constant(np.arange(b) % 6)

    def value_and_grad(e):
        with tf.GradientTape() as tape:
            tape.watch(e)
            value = tftriplet.batch_all_triplet_loss(labels, e, soft=True)[0]
        return value, tape.gradient(value, e)

    largest = largest_traced(value_and_grad, tf.TensorSpec((b, 4), "float32"))
    assert largest <= DENSE_MAX_BATCH * b * b < b**3


# --- anchor_terms (the cross-replica share) --------------------------------------------


@pytest.mark.parametrize("distance, soft", [("euclidean", False), ("squared_euclidean", False),
                                            ("cosine", False), ("euclidean", True),
                                            ("cosine", True)])
def test_anchor_terms_over_a_partition_give_the_loss_and_its_gradient(random_case, distance, soft):
    """Shares over uneven anchor sets sum to the reference loss; the numerators' gradients
    sum to the reference gradient times the global count."""
    rng = np.random.default_rng(25)
    labels, x = random_case(rng, 12, 3, 3)
    expected = want(labels, x, 0.3, distance, soft)
    loss = tftriplet.BatchAllTripletLoss(0.3, distance=distance, soft=soft, anchor_block=2,
                                         dtype="float64")
    xt = tf.constant(x)
    numerators, counts, grads = [], [], []
    for part in (np.arange(0, 5), np.arange(5, 6), np.arange(6, 12)):
        with tf.GradientTape() as tape:
            tape.watch(xt)
            num, count = loss.anchor_terms(tf.constant(labels), xt, tf.constant(part, "int32"))
        numerators.append(float(num))
        counts.append(float(count))
        grads.append(tape.gradient(num, xt).numpy())
    total = max(sum(counts), 1.0)
    np.testing.assert_allclose(sum(numerators) / total, expected["loss"], rtol=1e-9)
    np.testing.assert_allclose(sum(grads) / total, expected["gradient"], rtol=1e-8,
                               atol=1e-12)
    key = "num_valid" if soft else "num_positive"
    assert sum(counts) == expected[key]


def test_anchor_terms_memory_is_anchors_times_batch(largest_traced):
    """A replica's 16 anchors against a global batch of 128: no tensor above 16 x 128."""
    b, a = 128, 16
    labels = tf.constant(np.arange(b) % 8)
    loss = tftriplet.BatchAllTripletLoss(0.2)

    def value_and_grad(e):
        with tf.GradientTape() as tape:
            tape.watch(e)
            num, _ = loss.anchor_terms(labels, e, tf.range(a, dtype="int32"))
        return num, tape.gradient(num, e)

    assert largest_traced(value_and_grad, tf.TensorSpec((b, 4), "float32")) <= a * b


# --- cosine in the sorted form, at ties ------------------------------------------------


def _sorted_cosine(labels, x, margin, row_sort, anchor_block=None):
    return statistics_and_gradient(
        lambda y, e: batch_all_sorted(y, e, margin, False, row_sort=row_sort,
                                      anchor_block=anchor_block, distance="cosine"),
        labels, x, dtype=x.dtype,
    )


@settings(max_examples=20, deadline=None)
@given(
    batch_size=st.integers(2, 30),
    num_classes=st.integers(1, 8),
    levels=st.integers(2, 5),
    margin=st.sampled_from([0.0, 0.25, 0.5, 1.0, 0.3]),
    block=st.sampled_from([None, 1, 3, 7]),
    seed=st.integers(0, 2**31 - 1),
)
def test_cosine_sorted_and_dense_count_alike_at_ties(
    batch_size, num_classes, levels, margin, block, seed
):
    """Embeddings on a coarse float32 grid: many cosine distances coincide (parallel rows,
    zero rows at distance 1) and many hinges are 0 or within rounding of it. Both row sorts
    count the same triples as the dense form, as both compare ``d_ik < fl(d_ij + m)`` on the
    same float32 distances, and the losses agree."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=batch_size)
    x = (rng.integers(-levels, levels, size=(batch_size, 3)) / 2.0).astype("float32")
    dense = run(labels, x, margin, dtype="float32", distance="cosine", method="dense")
    for row_sort in ("merged", "positives"):
        got = _sorted_cosine(labels, x, margin, row_sort, block)
        assert got["num_positive"] == dense["num_positive"], row_sort
        assert got["num_valid"] == dense["num_valid"], row_sort
        np.testing.assert_allclose(got["loss"], dense["loss"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("margin", [0.0, 1.0])
@pytest.mark.parametrize("row_sort", ["merged", "positives"])
def test_cosine_exact_ties_follow_the_strict_hinge(margin, row_sort):
    """Rows along the axes (and zero rows): every cosine is exactly -1, 0 or 1, so every
    distance is exactly 0, 1 or 2 and many hinges are exactly 0; none of them counts, and
    the gradient is the reference's (subgradient 0 at a tie, 0 at a zero row)."""
    rng = np.random.default_rng(26)
    axes = np.concatenate([np.eye(3), -np.eye(3), np.zeros((1, 3))])
    x = axes[rng.integers(0, len(axes), size=18)] * rng.integers(1, 4, size=(18, 1))
    labels = rng.integers(0, 3, size=18)
    expected = want(labels, x, margin, "cosine")
    d = reference.distance_matrix(x, "cosine")
    hinge = d[:, :, None] - d[:, None, :] + margin
    assert np.any(reference.triplet_mask(labels) & (hinge == 0.0))  # the case has ties
    for dtype in ("float32", "float64"):
        got = _sorted_cosine(labels, x.astype(dtype), margin, row_sort)
        assert got["num_positive"] == expected["num_positive"]
        assert got["num_valid"] == expected["num_valid"]
        np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-6)
        np.testing.assert_allclose(got["gradient"], expected["gradient"], rtol=1e-5,
                                   atol=1e-7)


def test_sorted_cosine_matches_the_reference_with_a_zero_row(random_case):
    rng = np.random.default_rng(27)
    labels, x = random_case(rng, 14, 4, 3)
    x[3] = 0.0
    got = run(labels, x, distance="cosine", method="sorted")
    assert_same(got, want(labels, x, distance="cosine"))
    assert np.all(got["gradient"][3] == 0.0)


# --- the same answer whatever the method: empty batches and non-finite inputs ----------

#: (distance, soft, methods)
VARIANTS = [
    ("euclidean", False, ("auto", "dense", "sorted")),
    ("cosine", False, ("auto", "dense", "sorted")),
    ("euclidean", True, ("auto", "dense")),
]
#: "xla unknown": traced with an unknown batch size and compiled by XLA for each batch that
#: comes, as Keras' fit does with jit_compile on a GPU
MODES = ("eager", "function", "unknown", "xla", "xla unknown")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("distance, soft, methods", VARIANTS)
def test_empty_batch_gives_zero_for_every_method(distance, soft, methods, mode):
    labels = np.zeros((0,), "int32")
    x = np.zeros((0, 3), "float32")
    for method in methods:
        for block in (None, 4):
            got = run(labels, x, mode=mode, dtype="float32", distance=distance, soft=soft,
                      method=method, anchor_block=block)
            assert (got["loss"], got["fraction_positive"]) == (0.0, 0.0), (method, block)
            assert got["gradient"].shape == (0, 3)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("distance, soft, methods", VARIANTS)
def test_non_finite_embeddings_give_nan_for_every_method(
    random_case, distance, soft, methods, mode
):
    rng = np.random.default_rng(28)
    labels, clean = random_case(rng, 40, 3, 4)  # 40 > 32: auto picks sorted
    valid = want(labels, clean, distance=distance)["num_valid"]
    for bad in (np.nan, np.inf) if mode == "eager" else (np.nan,):
        x = clean.astype("float32")
        x[5, 1] = bad
        for method in methods:
            got = run(labels, x, mode=mode, dtype="float32", distance=distance, soft=soft,
                      method=method)
            for key in ("loss", "fraction_positive", "num_positive"):
                assert np.isnan(got[key]), (bad, method, key)
            assert got["num_valid"] == valid


def test_non_finite_embeddings_stop_training_with_terminate_on_nan(random_case):
    """A NaN in the batch makes the loss NaN, so keras.callbacks.TerminateOnNaN stops."""
    rng = np.random.default_rng(29)
    labels, x = random_case(rng, 40, 3, 4)
    x = x.astype("float32")
    x[0, 0] = np.nan
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    model.compile("sgd", loss=tftriplet.BatchAllTripletLoss(method="sorted"))
    history = model.fit(x, labels, batch_size=40, epochs=3, verbose=0,
                        callbacks=[keras.callbacks.TerminateOnNaN()])
    assert len(history.history["loss"]) == 1 and np.isnan(history.history["loss"][0])


# --- other Keras backends ---------------------------------------------------------------

_BACKEND_SCRIPT = r"""
import json, sys
import numpy as np
import keras
from keras import ops
import tftriplet

case = json.loads(sys.argv[1])
labels = np.asarray(case["labels"], dtype="int64")
x = np.asarray(case["x"], dtype="float32")
backend = keras.backend.backend()
out = {}
for name, options in case["variants"].items():
    def loss_fn(x):
        return tftriplet.batch_all_triplet_statistics(labels, x, 0.3, **options)["loss"]
    if backend == "jax":
        import jax
        loss, grad = jax.jit(jax.value_and_grad(loss_fn))(x)
    else:
        import torch
        xt = torch.tensor(x, requires_grad=True)
        loss = loss_fn(xt)
        loss.backward()
        grad = xt.grad
    out[name] = {"loss": float(loss), "gradient": np.asarray(ops.convert_to_numpy(grad)).tolist()}
empty = tftriplet.batch_all_triplet_loss(np.zeros((0,), "int64"), np.zeros((0, 3), "float32"),
                                         method="sorted", anchor_block=2)
out["empty"] = [float(v) for v in empty]
print(json.dumps(out))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_blocked_forms_under_other_keras_backends(random_case, backend):
    """jax.jit (fori_loop over blocks) and torch (a Python loop) against the reference."""
    pytest.importorskip(backend)
    rng = np.random.default_rng(30)
    labels, x = random_case(rng, 11, 3, 3)
    x32 = x.astype("float32")
    variants = {
        "sorted euclidean": {"method": "sorted", "anchor_block": 4},
        "sorted cosine": {"method": "sorted", "distance": "cosine", "anchor_block": 3},
        "dense soft": {"method": "dense", "soft": True, "anchor_block": 5},
    }
    case = {"labels": labels.tolist(), "x": x32.tolist(), "variants": variants}
    out = run_in_backend(backend, _BACKEND_SCRIPT, case)
    for name, options in variants.items():
        expected = want(labels, x32, 0.3, options.get("distance", "euclidean"),
                        options.get("soft", False))
        np.testing.assert_allclose(out[name]["loss"], expected["loss"], rtol=2e-5, err_msg=name)
        np.testing.assert_allclose(out[name]["gradient"], expected["gradient"], rtol=1e-4,
                                   atol=1e-6, err_msg=name)
    assert out["empty"] == [0.0, 0.0]


# --- columns left out: a fixed-size pool with empty slots ------------------------------


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
@pytest.mark.parametrize("kernel", [
    {"method": "dense"}, {"method": "dense", "soft": True},
    {"method": "sorted", "row_sort": "positives"}, {"method": "sorted", "row_sort": "merged"},
])
@pytest.mark.parametrize("distance", DISTANCES)
def test_invalid_columns_are_left_out(random_case, distance, kernel, mode):
    """Sums over a pool whose rows `valid` marks are those of the pool without the other
    rows (anchors renumbered), whatever the kernel; the left-out rows get no gradient."""
    from tftriplet import engine

    rng = np.random.default_rng(31)
    labels, x = random_case(rng, 20, 3, 4)
    valid = np.ones(20, bool)
    valid[[2, 5, 11, 12, 19]] = False
    anchors = np.array([0, 3, 4, 6, 9, 13, 17], "int32")
    options = dict(kernel, anchor_block=3)
    soft = options.pop("soft", False)

    def sums(y, e, index, mask):
        def step(y, e):
            with tf.GradientTape() as tape:
                tape.watch(e)
                got = engine.batch_all_sums(y, e, 0.3, distance, soft, anchor_index=index,
                                            valid=mask, **options)
                terms = got.terms + tf.reduce_sum(tf.stop_gradient(got.gradient) * e)
            return got, tape.gradient(terms, e)

        if mode != "eager":
            step = tf.function(step, jit_compile=(mode == "xla"))
        got, grad = step(tf.constant(y), tf.constant(e))
        return [float(v) for v in got[:3]], grad.numpy()

    masked, masked_grad = sums(labels, x, anchors, tf.constant(valid))
    kept = np.flatnonzero(valid)
    renumbered = np.searchsorted(kept, anchors).astype("int32")
    compact, compact_grad = sums(labels[kept], x[kept], renumbered, None)
    np.testing.assert_allclose(masked, compact, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(masked_grad[kept], compact_grad, rtol=1e-10, atol=1e-12)
    assert np.all(masked_grad[~valid] == 0.0)
