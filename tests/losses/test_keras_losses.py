"""The new losses as Keras objects: config, .keras save/reload, fit, tf.function and XLA,
and the JAX and PyTorch backends (losses and metrics, in subprocesses) against the float64
reference."""

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
from helpers import ALL_CASES, case_id

import tftriplet
from tftriplet_conformance import reference

LOSS_CLASSES = {
    "batch_all": tftriplet.BatchAllTripletLoss,
    "batch_hard": tftriplet.BatchHardTripletLoss,
    "semi_hard": tftriplet.SemiHardTripletLoss,
}


def make_loss(case, margin=0.3):
    name, soft, distance = case
    return LOSS_CLASSES[name](margin=margin, distance=distance, soft=soft)


@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_config_round_trip(case):
    loss = make_loss(case)
    config = loss.get_config()
    assert (config["distance"], config["soft"], config["margin"]) == (case[2], case[1], 0.3)
    assert config["squared"] == (case[2] == "squared_euclidean")
    clone = type(loss).from_config(config)
    assert clone.get_config() == config
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss) and restored.get_config() == config


def identity_model(dim):
    inputs = keras.Input((dim,))
    return keras.Model(inputs, keras.layers.Identity()(inputs))


@pytest.mark.parametrize(
    "case",
    [
        ("batch_hard", True, "cosine"),
        ("semi_hard", False, "squared_euclidean"),
        ("batch_all", True, "euclidean"),
    ],
    ids=case_id,
)
def test_keras_file_reloads_without_custom_objects(draw_case, case, tmp_path):
    rng = np.random.default_rng(0)
    labels, x = draw_case(rng, 16, 4, 3, 0.3, case[2])
    model = identity_model(4)
    model.compile(
        loss=make_loss(case),
        metrics=[
            tftriplet.TripletDifficulty(0.3, distance=case[2]),
            tftriplet.MeanNegativeDistance(),
        ],
    )
    before = model.evaluate(x, labels, batch_size=16, verbose=0, return_dict=True)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert type(reloaded.loss) is type(model.loss)
    assert reloaded.loss.get_config() == model.loss.get_config()
    after = reloaded.evaluate(x, labels, batch_size=16, verbose=0, return_dict=True)
    assert after == pytest.approx(before, rel=1e-6)
    ref = reference.triplet_loss(labels, x, case[0], 0.3, case[2], case[1])["loss"]
    np.testing.assert_allclose(after["loss"], ref, rtol=1e-5)


@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_fit_one_step_updates_weights_finitely(draw_case, case):
    rng = np.random.default_rng(1)
    labels, x = draw_case(rng, 32, 6, 4, 0.3, case[2])
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(3, name="embed")(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=make_loss(case))
    before = model.get_layer("embed").kernel.numpy().copy()
    history = model.fit(x, labels, batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = model.get_layer("embed").kernel.numpy()
    assert np.all(np.isfinite(after)) and not np.allclose(before, after)


@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_eager_tf_function_and_xla_agree(draw_case, case):
    rng = np.random.default_rng(2)
    labels, x = draw_case(rng, 20, 5, 4, 0.3, case[2])
    x = tf.constant(x.astype("float32"))
    loss = make_loss(case)

    def value_and_grad(e):
        with tf.GradientTape() as tape:
            tape.watch(e)
            value = loss(labels, e)
        return value, tape.gradient(value, e)

    eager = value_and_grad(x)
    graph = tf.function(value_and_grad)(x)
    xla = tf.function(value_and_grad, jit_compile=True)(x)
    for other in (graph, xla):
        np.testing.assert_allclose(other[0], eager[0], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(other[1], eager[1], rtol=1e-4, atol=1e-6)
    ref = reference.triplet_loss(labels, x.numpy(), case[0], 0.3, case[2], case[1])
    np.testing.assert_allclose(xla[0], ref["loss"], rtol=1e-5)
    np.testing.assert_allclose(xla[1], ref["gradient"], rtol=1e-3, atol=1e-5)


def test_unknown_batch_size_in_graph(draw_case):
    # Keras may trace with a None batch dimension; the bisection then runs its fixed steps.
    rng = np.random.default_rng(3)
    labels, x = draw_case(rng, 13, 3, 3, 0.3, "euclidean")
    fn = tf.function(
        lambda y, e: tftriplet.semi_hard_triplet_loss(y, e, 0.3),
        input_signature=[tf.TensorSpec((None,), "int64"), tf.TensorSpec((None, 3), "float32")],
    )
    np.testing.assert_allclose(
        fn(labels, x.astype("float32")), reference.semi_hard(labels, x, 0.3)["loss"], rtol=1e-5
    )


BACKEND_SCRIPT = r"""
import json, os, sys
import numpy as np
import keras
import tftriplet

backend = keras.backend.backend()
cases = json.loads(sys.stdin.read())
out = []
for case in cases:
    labels = np.array(case["labels"], dtype="int64")
    x = np.array(case["embeddings"], dtype="float32")
    loss_obj = case["loss"]

    def f(e):
        return tftriplet.triplet_loss(labels, e, **loss_obj)

    if backend == "jax":
        import jax
        value, grad = jax.jit(jax.value_and_grad(f))(x)  # traced, as in a jitted train step
    else:
        import torch
        e = torch.tensor(x, requires_grad=True)
        value = f(e)
        value.backward()
        value, grad = value.detach(), e.grad
    difficulty = tftriplet.TripletDifficulty(loss_obj["margin"], distance=loss_obj["distance"])
    difficulty.update_state(labels, x)
    positive = tftriplet.MeanPositiveDistance(distance=loss_obj["distance"])
    positive.update_state(labels, x)
    out.append({
        "loss": float(np.asarray(value)),
        "gradient": np.asarray(grad).tolist(),
        "difficulty": {k: float(np.asarray(v)) for k, v in difficulty.result().items()},
        "mean_positive": float(np.asarray(positive.result())),
    })
print(json.dumps({"backend": backend, "results": out}))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_backends_match_reference(draw_case, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed in this environment")
    rng = np.random.default_rng(4)
    cases = []
    for name, soft, distance in ALL_CASES:
        labels, x = draw_case(rng, 12, 4, 3, 0.3, distance)
        loss = {"strategy": name, "margin": 0.3, "distance": distance, "soft": soft}
        cases.append({"labels": labels.tolist(), "embeddings": x.tolist(), "loss": loss})
    root = Path(tftriplet.__file__).resolve().parent.parent
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, "-c", BACKEND_SCRIPT],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    assert payload["backend"] == backend
    for case, got in zip(cases, payload["results"], strict=True):
        x = np.array(case["embeddings"], dtype="float32").astype("float64")
        ref = reference.triplet_loss(case["labels"], x, **case["loss"])
        np.testing.assert_allclose(got["loss"], ref["loss"], rtol=1e-5, err_msg=str(case["loss"]))
        np.testing.assert_allclose(
            got["gradient"], ref["gradient"], rtol=1e-3, atol=1e-5, err_msg=str(case["loss"])
        )
        margin, distance = case["loss"]["margin"], case["loss"]["distance"]
        counts = reference.triplet_difficulty(case["labels"], x, margin, distance)
        for kind, value in got["difficulty"].items():
            np.testing.assert_allclose(value, counts[kind] / counts["valid"], rtol=1e-6)
        d = reference.distance_matrix(x, distance)
        labels = np.array(case["labels"])
        same = (labels[:, None] == labels[None, :]) & ~np.eye(len(labels), dtype=bool)
        np.testing.assert_allclose(got["mean_positive"], d[same].mean(), rtol=1e-5)


def largest_graph_tensor(largest_traced, fn, batch_size, dim=4):
    """Elements of the largest tensor in the traced graph of ``fn`` and its gradient."""
    labels = tf.constant(np.arange(batch_size) % 5, dtype="int64")

    def value_and_grad(e):
        with tf.GradientTape() as tape:
            tape.watch(e)
            value = fn(labels, e)
        return value, tape.gradient(value, e)

    return largest_traced(value_and_grad, tf.TensorSpec((batch_size, dim), "float32"))


_DIFFICULTY = tftriplet.TripletDifficulty(distance="cosine")


def difficulty_update(labels, embeddings):
    _DIFFICULTY.update_state(labels, embeddings)
    return keras.ops.sum(embeddings) * 0.0


@pytest.mark.parametrize(
    "fn",
    [
        lambda y, e: tftriplet.semi_hard_triplet_loss(y, e),
        lambda y, e: tftriplet.batch_hard_triplet_loss(y, e, soft=True),
        difficulty_update,
    ],
    ids=["semi_hard", "batch_hard", "difficulty"],
)
def test_no_cubic_tile(largest_traced, fn):
    b = 40
    # dense batch-all does build (B, B, B): the check can see one
    dense = lambda y, e: tftriplet.batch_all_triplet_loss(y, e, method="dense")[0]  # noqa: E731
    assert largest_graph_tensor(largest_traced, dense, b) >= b**3
    assert largest_graph_tensor(largest_traced, fn, b) <= b * b


@pytest.mark.parametrize("name", ["batch_hard", "semi_hard"])
def test_large_integer_labels_stay_distinct(draw_case, name):
    # 2**24 and 2**24 + 1 merge in float32; as int64 they are two classes.
    rng = np.random.default_rng(5)
    small, x = draw_case(rng, 8, 3, 2, 0.3, "euclidean")
    big = np.where(small == 0, 2**24, 2**24 + 1).astype("int64")
    loss = LOSS_CLASSES[name](margin=0.3)
    ref = reference.triplet_loss(small, x, name, 0.3)["loss"]
    np.testing.assert_allclose(float(loss(big, x)), ref, rtol=1e-5)
    model = identity_model(3)
    model.compile(loss=loss)
    np.testing.assert_allclose(model.evaluate(x, big, batch_size=8, verbose=0), ref, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_embeddings_are_computed_in_float32(draw_case, dtype):
    rng = np.random.default_rng(6)
    labels, x = draw_case(rng, 16, 4, 3, 0.3, "cosine")
    x_half = tf.cast(x, dtype)
    for name, soft, distance in [("batch_hard", True, "cosine"), ("semi_hard", False, "cosine")]:
        value = tftriplet.triplet_loss(labels, x_half, name, 0.3, distance, soft)
        assert keras.backend.standardize_dtype(value.dtype) == "float32"
        rounded = tf.cast(x_half, "float64").numpy()
        ref = reference.triplet_loss(labels, rounded, name, 0.3, distance, soft)["loss"]
        np.testing.assert_allclose(float(value), ref, rtol=1e-4, atol=1e-6)
