"""BatchAllTripletLoss and FractionPositiveTriplets as Keras objects: compile, fit, save."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tftriplet
from tftriplet_conformance import reference


def identity_model(dim, dtype=None):
    """A model whose output is its input: the loss sees exactly the embeddings given."""
    inputs = keras.Input((dim,))
    outputs = keras.layers.Identity(dtype=dtype)(inputs)
    return keras.Model(inputs, outputs)


def test_config_round_trip():
    loss = tftriplet.BatchAllTripletLoss(margin=0.7, squared=True, name="trip")
    config = loss.get_config()
    assert config["margin"] == 0.7 and config["squared"] is True and config["name"] == "trip"
    clone = tftriplet.BatchAllTripletLoss.from_config(config)
    assert clone.get_config() == config
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, tftriplet.BatchAllTripletLoss)
    assert restored.get_config() == config


def test_negative_margin_rejected():
    with pytest.raises(ValueError, match="margin"):
        tftriplet.BatchAllTripletLoss(margin=-0.1)


def test_evaluate_matches_reference_and_metric(random_case):
    rng = np.random.default_rng(11)
    labels, x = random_case(rng, 32, 6, 4)
    model = identity_model(6)
    model.compile(
        loss=tftriplet.BatchAllTripletLoss(margin=0.3),
        metrics=[tftriplet.FractionPositiveTriplets(margin=0.3)],
    )
    result = model.evaluate(x, labels, batch_size=32, verbose=0, return_dict=True)
    ref = reference.batch_all(labels, x, 0.3)
    np.testing.assert_allclose(result["loss"], ref["loss"], rtol=1e-5)
    np.testing.assert_allclose(result["fraction_positive"], ref["fraction_positive"], rtol=1e-5)


def test_metric_averages_batches(random_case):
    rng = np.random.default_rng(12)
    metric = tftriplet.FractionPositiveTriplets(margin=0.2)
    fractions = []
    for _ in range(3):
        labels, x = random_case(rng, 12, 4, 3)
        metric.update_state(labels, x)
        fractions.append(reference.batch_all(labels, x, 0.2)["fraction_positive"])
    np.testing.assert_allclose(metric.result(), np.mean(fractions), rtol=1e-5)
    clone = tftriplet.FractionPositiveTriplets.from_config(metric.get_config())
    assert clone.margin == 0.2


def test_fit_reduces_loss():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 8)
    x = rng.normal(size=(32, 8)).astype("float32") + labels[:, None] * 0.3
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=tftriplet.BatchAllTripletLoss())
    before = model.evaluate(x, labels, batch_size=32, verbose=0)
    model.fit(x, labels, batch_size=32, epochs=20, shuffle=False, verbose=0)
    after = model.evaluate(x, labels, batch_size=32, verbose=0)
    assert np.isfinite(after) and after < before


def test_saved_model_reloads_without_custom_objects(random_case, tmp_path):
    rng = np.random.default_rng(1)
    labels, x = random_case(rng, 16, 5, 3)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(
        loss=tftriplet.BatchAllTripletLoss(margin=0.4, squared=True),
        metrics=[tftriplet.FractionPositiveTriplets(margin=0.4, squared=True)],
    )
    expected = model.evaluate(x, labels, batch_size=16, verbose=0, return_dict=True)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)  # no custom_objects
    assert isinstance(restored.loss, tftriplet.BatchAllTripletLoss)
    assert restored.loss.margin == 0.4 and restored.loss.squared is True
    got = restored.evaluate(x, labels, batch_size=16, verbose=0, return_dict=True)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-6)


# --- labels -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def big_label_case(clear_of_ties):
    """``big_label_case(base)``: two classes whose ids differ by one. Merged (as float32
    would merge 2**24 and 2**24 + 1), there would be no negative and the loss would be 0."""

    def case(base):
        labels = np.array([base, base, base + 1, base + 1, base, base + 1], dtype="int64")
        x = np.array([[0.0], [0.47], [0.21], [0.93], [0.11], [0.34]], dtype="float32")
        assert clear_of_ties(labels, x, 0.2, "euclidean", "batch_all", tol=1e-3)
        return labels, x

    return case


@pytest.mark.parametrize("base", [2**24, 2**40 + 3, -(2**40)])
def test_big_integer_labels_stay_distinct(big_label_case, base):
    labels, x = big_label_case(base)
    ref = reference.batch_all(labels, x, 0.2)
    assert ref["num_valid"] > 0 and ref["loss"] > 0
    merged = reference.batch_all(labels.astype("float32"), x, 0.2)
    assert merged["num_valid"] == 0  # what a float cast would do

    stats = tftriplet.batch_all_triplet_statistics(labels, x, 0.2)
    assert float(stats["num_valid"]) == ref["num_valid"]
    np.testing.assert_allclose(
        tftriplet.BatchAllTripletLoss()(tf.constant(labels), x), ref["loss"], rtol=1e-6
    )
    model = identity_model(1)
    model.compile(
        optimizer="sgd",
        loss=tftriplet.BatchAllTripletLoss(),
        metrics=[tftriplet.FractionPositiveTriplets()],
    )
    result = model.evaluate(x, labels, batch_size=6, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["loss"], ref["loss"], rtol=1e-6)
    np.testing.assert_allclose(result["fraction_positive"], ref["fraction_positive"], rtol=1e-6)
    history = model.fit(x, labels, batch_size=6, epochs=1, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], ref["loss"], rtol=1e-6)


def test_float_labels_holding_integers_accepted(random_case):
    rng = np.random.default_rng(2)
    labels, x = random_case(rng, 10, 3, 3)
    a = tftriplet.BatchAllTripletLoss()(labels, x)
    b = tftriplet.BatchAllTripletLoss()(labels.astype("float32"), x)
    np.testing.assert_allclose(a, b, rtol=0)


def test_labels_of_shape_b_by_1_accepted(random_case):
    rng = np.random.default_rng(2)
    labels, x = random_case(rng, 10, 3, 3)
    a = tftriplet.BatchAllTripletLoss()(labels, x)
    b = tftriplet.BatchAllTripletLoss()(labels[:, None], x)
    np.testing.assert_allclose(a, b, rtol=0)


# --- precision ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_inputs_computed_in_float32(random_case, dtype):
    rng = np.random.default_rng(4)
    labels, x = random_case(rng, 16, 8, 3)
    low = tf.cast(tf.constant(x, tf.float32), dtype)
    got = tftriplet.BatchAllTripletLoss()(labels, low)
    assert got.dtype == tf.float32
    # The same rounded inputs, computed in float64 by the reference.
    ref = reference.batch_all(labels, tf.cast(low, tf.float64).numpy(), 0.2)
    np.testing.assert_allclose(got, ref["loss"], rtol=1e-5)


def test_loss_dtype_argument(random_case):
    rng = np.random.default_rng(4)
    labels, x = random_case(rng, 8, 3, 2)
    got = tftriplet.BatchAllTripletLoss(dtype="bfloat16")(labels, x)
    assert got.dtype == tf.bfloat16
    ref = reference.batch_all(labels, x, 0.2)["loss"]
    np.testing.assert_allclose(float(got), ref, rtol=1e-2)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_training_close_to_float32(random_case, policy):
    rng = np.random.default_rng(6)
    labels, x = random_case(rng, 24, 8, 3)
    x = x.astype("float32")
    results = {}
    for name in ("float32", policy):
        keras.mixed_precision.set_global_policy(name)
        try:
            keras.utils.set_random_seed(0)
            inputs = keras.Input((8,))
            model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
            model.compile(optimizer="sgd", loss=tftriplet.BatchAllTripletLoss())
            assert model.output.dtype == ("float32" if name == "float32" else policy[6:])
            loss = model.evaluate(x, labels, batch_size=24, verbose=0)
            history = model.fit(x, labels, batch_size=24, epochs=2, verbose=0)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        assert np.isfinite(loss) and np.all(np.isfinite(history.history["loss"]))
        results[name] = loss
    # The only difference is the Dense layer's float16/bfloat16 output rounding.
    np.testing.assert_allclose(results[policy], results["float32"], rtol=3e-2)


# --- bad input ----------------------------------------------------------------------------


def test_rank_of_embeddings_checked():
    with pytest.raises(ValueError, match=r"rank 2.*got shape \(4, 2, 3\)"):
        tftriplet.batch_all_triplet_loss([0, 0, 1, 1], np.zeros((4, 2, 3)))
    with pytest.raises(ValueError, match=r"rank 2.*got shape \(4,\)"):
        tftriplet.BatchAllTripletLoss()([0, 0, 1, 1], np.zeros(4))


def test_one_hot_labels_rejected():
    one_hot = np.eye(3)[[0, 0, 1, 2]]
    with pytest.raises(ValueError, match=r"got shape \(4, 3\).*argmax"):
        tftriplet.BatchAllTripletLoss()(one_hot, np.zeros((4, 2)))


def test_batch_size_mismatch_rejected():
    with pytest.raises(ValueError, match=r"same batch size.*\(5,\).*\(4, 2\)"):
        tftriplet.batch_all_triplet_loss(np.arange(5), np.zeros((4, 2)))


def test_rank_3_labels_rejected():
    with pytest.raises(ValueError, match=r"labels.*got shape \(4, 1, 1\)"):
        tftriplet.batch_all_triplet_loss(np.zeros((4, 1, 1)), np.zeros((4, 2)))


def test_non_numeric_labels_rejected():
    with pytest.raises(TypeError, match="labels"):
        tftriplet.batch_all_triplet_loss(np.array(["a", "b"]), np.zeros((2, 2)))
    with pytest.raises(TypeError, match="labels"):
        tftriplet.BatchAllTripletLoss()(tf.constant(["a", "b"]), np.zeros((2, 2)))


def test_sample_weight_rejected():
    with pytest.raises(ValueError, match="sample_weight"):
        tftriplet.BatchAllTripletLoss()([0, 0, 1], np.zeros((3, 2)), sample_weight=[1, 1, 1])


@pytest.mark.parametrize("jit_compile", [False, True])
def test_evaluate_under_xla_matches_reference(random_case, jit_compile):
    """Keras traces the step with an unknown batch size and, with jit_compile (its
    default on a GPU), XLA compiles it for each batch: batches of 48 (the counted form)
    and a last batch of 16 (every triple) give the reference's loss."""
    rng = np.random.default_rng(13)
    labels, x = random_case(rng, 64, 5, 8)
    model = identity_model(5)
    model.compile(loss=tftriplet.BatchAllTripletLoss(margin=0.3),
                  metrics=[tftriplet.FractionPositiveTriplets(margin=0.3)],
                  jit_compile=jit_compile)
    results = [model.evaluate(x[s], labels[s], batch_size=48, verbose=0, return_dict=True)
               for s in (slice(0, 48), slice(48, 64))]
    for result, s in zip(results, (slice(0, 48), slice(48, 64)), strict=True):
        ref = reference.batch_all(labels[s], x[s], 0.3)
        np.testing.assert_allclose(result["loss"], ref["loss"], rtol=1e-5)
        np.testing.assert_allclose(result["fraction_positive"], ref["fraction_positive"],
                                   rtol=1e-5)
