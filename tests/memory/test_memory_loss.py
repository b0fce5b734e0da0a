"""The losses with a cross-batch memory against the float64 pooled reference, under
TensorFlow (eager, tf.function, XLA), and against JAX and PyTorch called directly.

`reference.memory_steps` defines each step: the batch's anchors mined against the batch
and the memory (the most recent samples before it, first in, first out), the memory's
rows constant. A stream longer than the memory evicts entries; warm-up steps are the
batch alone. Also: the validity mask of batch-hard and semi-hard mining, gradients
against finite differences, the statistics, the state's methods, saving, bad input.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import tftriplet
from tftriplet.memory import CrossBatchMemory
from tftriplet_conformance import reference

LOSSES = {
    "batch_all": tftriplet.BatchAllTripletLoss,
    "batch_hard": tftriplet.BatchHardTripletLoss,
    "semi_hard": tftriplet.SemiHardTripletLoss,
}
#: (strategy, soft, distance): every strategy, both margins, every distance.
CASES = [
    ("batch_all", False, "euclidean"),
    ("batch_all", True, "cosine"),
    ("batch_hard", False, "squared_euclidean"),
    ("batch_hard", True, "euclidean"),
    ("semi_hard", False, "cosine"),
    ("semi_hard", False, "euclidean"),
]
SIZE, WARMUP, MARGIN = 10, 1, 0.3


def stream(seed=0, sizes=(6, 6, 6, 6, 4), dim=3, classes=3):
    """Batches whose total (28, 22 after warm-up) is longer than the memory (10)."""
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, classes, b).astype("int64"), rng.normal(size=(b, dim)))
            for b in sizes]


def expected_steps(steps, strategy, soft, distance, size=SIZE, warmup=WARMUP):
    return reference.memory_steps(steps, size, warmup, strategy, MARGIN, distance, soft)


def make_loss(strategy, soft, distance, dtype="float64", size=SIZE, warmup=WARMUP):
    return LOSSES[strategy](margin=MARGIN, soft=soft, distance=distance, memory_size=size,
                            memory_warmup=warmup, dtype=dtype)


def tf_step(loss, mode):
    def step(labels, embeddings):
        with tf.GradientTape() as tape:
            tape.watch(embeddings)
            value = loss(labels, embeddings)
        return value, tape.gradient(value, embeddings)

    return {"eager": step, "function": tf.function(step),
            "xla": tf.function(step, jit_compile=True)}[mode]


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_every_step_is_the_pooled_reference(case, mode):
    steps = stream()
    expected = expected_steps(steps, *case)
    dtype = "float32" if mode == "xla" else "float64"  # what users compile
    loss, tolerance = make_loss(*case, dtype=dtype), 2e-5 if mode == "xla" else 1e-9
    step = tf_step(loss, mode)
    for index, ((labels, embeddings), want) in enumerate(zip(steps, expected, strict=True)):
        value, gradient = step(tf.constant(labels), tf.constant(embeddings, dtype))
        np.testing.assert_allclose(float(value), want["loss"], rtol=tolerance, atol=tolerance,
                                   err_msg=f"step {index}")
        np.testing.assert_allclose(gradient.numpy(), want["gradient"], rtol=tolerance,
                                   atol=tolerance, err_msg=f"step {index}")
    assert loss.memory.steps == len(steps) and loss.memory.filled == SIZE
    labels, embeddings = loss.memory.contents()
    np.testing.assert_array_equal(labels, np.concatenate([s[0] for s in steps])[-SIZE:])
    np.testing.assert_allclose(embeddings, np.concatenate([s[1] for s in steps])[-SIZE:],
                               rtol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_the_gradient_is_the_finite_difference_of_the_loss_against_its_memory(case):
    loss = make_loss(*case, warmup=0)
    steps = stream(seed=1)
    for labels, embeddings in steps[:3]:  # fill the memory
        loss(labels, embeddings)
    labels, embeddings = steps[3]
    before = loss.memory.contents()
    x = tf.Variable(embeddings)
    with tf.GradientTape() as tape:
        value = loss.statistics(labels, x)["loss"]
    analytic = tape.gradient(value, x).numpy()
    numeric = reference.finite_difference_gradient(
        lambda e: float(loss.statistics(labels, e)["loss"]), embeddings
    )
    np.testing.assert_allclose(analytic, numeric, atol=1e-6)
    for held, now in zip(before, loss.memory.contents(), strict=True):  # statistics peek
        np.testing.assert_array_equal(held, now)
    with tf.GradientTape() as tape:
        trained = loss(labels, x)
    np.testing.assert_allclose(float(trained), float(value), rtol=1e-12)
    np.testing.assert_allclose(tape.gradient(trained, x).numpy(), analytic, rtol=1e-12)


def test_the_statistics_are_the_references_counts():
    steps = stream(seed=2)
    for strategy, count in (("batch_all", "num_valid"), ("batch_hard", "num_anchors"),
                            ("semi_hard", "num_pairs")):
        loss = make_loss(strategy, False, "euclidean")
        for (labels, embeddings), want in zip(steps, expected_steps(
                steps, strategy, False, "euclidean"), strict=True):
            stats = loss.statistics(labels, embeddings)
            loss(labels, embeddings)
            assert float(stats[count]) == want[count] and float(
                stats["num_positive"]) == want["num_positive"], strategy
            if strategy == "batch_all":
                assert float(stats["fraction_positive"]) == pytest.approx(
                    want["fraction_positive"])


def test_a_batch_larger_than_the_memory_keeps_its_last_rows():
    loss = make_loss("batch_hard", False, "euclidean", size=4, warmup=0)
    steps = stream(seed=3, sizes=(6, 6, 6))
    for (labels, embeddings), want in zip(steps, expected_steps(
            steps, "batch_hard", False, "euclidean", size=4, warmup=0), strict=True):
        assert float(loss(labels, embeddings)) == pytest.approx(want["loss"], rel=1e-9)
    np.testing.assert_array_equal(loss.memory.contents()[0], steps[-1][0][-4:])


def test_labels_stay_integers_in_the_memory():
    # 2**53 + 1 and 2**53 + 2 merge in float64; uint64 beyond 2**63 is kept apart too
    labels = np.array([2**53 + 1, 2**53 + 2, 2**53 + 1, 2**53 + 2], dtype="int64")
    rng = np.random.default_rng(4)
    first, second = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    loss = make_loss("batch_all", False, "euclidean", warmup=0)
    loss(labels, first)
    want = reference.pooled(labels, second, labels, first, "batch_all", MARGIN)
    assert float(loss(labels, second)) == pytest.approx(want["loss"], rel=1e-9)
    big = np.array([2**64 - 1, 2**63, 2**64 - 1, 2**63], dtype="uint64")
    loss = make_loss("batch_all", False, "euclidean", warmup=0)
    loss(big, first)
    assert float(loss(big, second)) == pytest.approx(want["loss"], rel=1e-9)


def test_valid_columns_mine_as_if_the_invalid_ones_were_not_there():
    """AnchorRows' validity mask: the pool with invalid rows gives the reference of the
    pool without them (the first 4 rows anchors), for the three strategies."""
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 12).astype("int64")
    embeddings = rng.normal(size=(12, 3))
    valid = np.array([True] * 4 + [True, False, True, True, False, True, False, True])
    anchors = np.arange(4, dtype="int32")
    for strategy, loss_class in LOSSES.items():
        loss = loss_class(margin=MARGIN, dtype="float64")
        x = tf.Variable(embeddings)
        with tf.GradientTape() as tape:
            value = loss.compute(tf.constant(labels), x, anchors, tf.constant(valid))
        gradient = tape.gradient(value, x).numpy()
        kept = np.flatnonzero(valid)
        want = reference.pooled(labels[:4], embeddings[:4], labels[kept[4:]],
                                embeddings[kept[4:]], strategy, MARGIN)
        assert float(value) == pytest.approx(want["loss"], rel=1e-9), strategy
        np.testing.assert_allclose(gradient[:4], want["gradient"], atol=1e-9, err_msg=strategy)


def test_warm_up_steps_count_and_clear_starts_again():
    loss = make_loss("batch_all", False, "euclidean", warmup=2)
    steps = stream(seed=6)
    for labels, embeddings in steps[:2]:
        loss(labels, embeddings)
    assert (loss.memory.steps, loss.memory.filled) == (2, 0)
    loss(*steps[2])
    assert (loss.memory.steps, loss.memory.filled) == (3, 6)
    loss.memory.clear()
    assert (loss.memory.steps, loss.memory.filled) == (0, 0)
    assert loss.memory.contents()[0].size == 0
    alone = reference.batch_all(steps[3][0], steps[3][1], MARGIN)["loss"]
    assert float(loss(*steps[3])) == pytest.approx(alone, rel=1e-9)  # warming up again


def test_the_config_round_trips_and_a_reloaded_model_starts_empty(tmp_path):
    loss = tftriplet.SemiHardTripletLoss(margin=0.4, memory_size=64, memory_warmup=3)
    config = loss.get_config()
    assert (config["memory_size"], config["memory_warmup"]) == (64, 3)
    clone = tftriplet.SemiHardTripletLoss.from_config(config)
    assert clone.get_config() == config and clone.memory.size == 64
    assert tftriplet.BatchAllTripletLoss().memory is None
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", loss)
    tftriplet.attach_memory(model)
    model.fit(np.ones((8, 3)), np.arange(8) % 2, batch_size=2, verbose=0)
    assert (loss.memory.steps, loss.memory.filled) == (4, 2)  # after 3 warm-up steps
    assert loss.memory.resume_key == "memory:semi_hard_triplet_loss_memory"  # not numbered
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert reloaded.loss.get_config() == config
    assert reloaded.loss.memory.filled == 0 and reloaded.loss.memory.steps == 0


@pytest.mark.parametrize("size", [-1, 2.5, 8.0, True, "8", None])
def test_a_size_that_is_not_a_whole_number_of_samples_is_refused(size):
    with pytest.raises(ValueError, match="memory_size must be"):
        tftriplet.BatchHardTripletLoss(memory_size=size)


@pytest.mark.parametrize("warmup", [-1, 1.5, False])
def test_a_warmup_that_is_not_a_number_of_steps_is_refused(warmup):
    with pytest.raises(ValueError, match="memory_warmup must be"):
        tftriplet.BatchAllTripletLoss(memory_size=4, memory_warmup=warmup)


def test_a_warmup_without_a_memory_is_refused():
    with pytest.raises(ValueError, match="needs a memory: give memory_size > 0"):
        tftriplet.BatchAllTripletLoss(memory_warmup=5)
    with pytest.raises(ValueError, match="at least 1 sample"):
        CrossBatchMemory(0)


def test_a_changed_embedding_dimension_or_dtype_is_refused():
    loss = make_loss("batch_hard", False, "euclidean", dtype=None)
    labels = np.array([0, 0, 1, 1])
    loss(labels, np.ones((4, 3), "float32"))
    with pytest.raises(ValueError, match="the embedding dimension changed between steps: .* "
                                         "holds 3 .*, this batch has 5"):
        loss(labels, np.ones((4, 5), "float32"))
    with pytest.raises(ValueError, match="the embedding dtype changed between steps: .* holds "
                                         "float32 .*, this batch has float64"):
        loss(labels, np.ones((4, 3), "float64"))
    loss(labels, np.ones((4, 3), "float16"))  # computed in float32: the memory holds it


def test_an_unknown_dimension_in_a_graph_is_refused():
    loss = make_loss("batch_all", False, "euclidean")
    spec = tf.TensorSpec((None, None), "float64")
    with pytest.raises(ValueError, match="needs the embedding dimension when the graph"):
        tf.function(loss, input_signature=[tf.TensorSpec((None,), "int64"), spec])\
            .get_concrete_function()


def test_attach_memory_needs_a_loss_with_a_memory():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", tftriplet.BatchAllTripletLoss())
    with pytest.raises(ValueError, match="found no loss with a memory"):
        tftriplet.attach_memory(model)


DIRECT = """
import json, sys
import numpy as np, keras, tftriplet
from tftriplet_conformance import reference
cases = json.loads(sys.stdin.read())
rng = np.random.default_rng(0)
steps = [(rng.integers(0, 3, 6), rng.normal(size=(6, 3)).astype("float32")) for _ in range(4)]
out = []
for strategy, soft, distance in cases:
    cls = {"batch_all": tftriplet.BatchAllTripletLoss, "batch_hard": tftriplet.BatchHardTripletLoss,
           "semi_hard": tftriplet.SemiHardTripletLoss}[strategy]
    loss = cls(margin=0.3, soft=soft, distance=distance, memory_size=8, memory_warmup=1)
    got = []
    for labels, e in steps:
        if keras.backend.backend() == "torch":
            import torch
            x = torch.tensor(e, requires_grad=True)
            value = loss(torch.tensor(labels), x); value.backward(); g = x.grad.numpy()
            got.append([float(value), g.tolist()])
        else:
            got.append([float(loss(labels, e)), None])
    ref = reference.memory_steps([(l, e.astype("float64")) for l, e in steps], 8, 1, strategy,
                                 0.3, distance, soft)
    out.append([[g[0], r["loss"], g[1], r["gradient"].tolist()] for g, r in zip(got, ref)])
print(json.dumps(out))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_jax_and_torch_called_directly_follow_the_reference(backend):
    """Eager calls (JAX's updates in place outside a transformation; torch's gradient)."""
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (the tensorflow tox env has it)")
    root = Path(tftriplet.__file__).resolve().parents[1]
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-c", DIRECT], input=json.dumps(CASES),
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for case, steps in zip(CASES, json.loads(proc.stdout.splitlines()[-1]), strict=True):
        for got, want, gradient, want_gradient in steps:
            assert got == pytest.approx(want, rel=1e-5, abs=1e-6), case
            if gradient is not None:
                np.testing.assert_allclose(gradient, want_gradient, rtol=1e-4, atol=1e-5)


def test_a_subclass_written_before_the_validity_mask_works_without_a_memory():
    class Older(tftriplet.TripletLoss):
        strategy, count_name = "batch_hard", "num_anchors"

        def sums(self, labels, embeddings, anchor_index=None):  # no `valid`
            return tftriplet.BatchHardTripletLoss.sums(self, labels, embeddings, anchor_index)

    labels, embeddings = stream(seed=7)[0]
    want = reference.batch_hard(labels, embeddings, MARGIN)
    assert float(Older(margin=MARGIN, dtype="float64")(labels, embeddings)) == pytest.approx(
        want["loss"], rel=1e-9)
    assert float(Older(margin=MARGIN).statistics(labels, embeddings)["num_anchors"]) == want[
        "num_anchors"]


class OwnComputeLoss(keras.Sequential):
    """A model whose compute_loss predates Keras' `training` argument."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):
        return super().compute_loss(x, y, y_pred, sample_weight)


def test_evaluate_leaves_the_memory_alone_with_a_compute_loss_without_training():
    loss = tftriplet.BatchHardTripletLoss(memory_size=64)
    model = OwnComputeLoss([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", loss)
    tftriplet.attach_memory(model)
    x, y = np.random.default_rng(0).normal(size=(8, 3)), np.arange(8) % 2
    model.fit(x, y, batch_size=4, verbose=0)
    assert (loss.memory.steps, loss.memory.filled) == (2, 8)
    model.evaluate(x, y, batch_size=4, verbose=0)
    assert (loss.memory.steps, loss.memory.filled) == (2, 8)  # evaluation mined, not pushed
