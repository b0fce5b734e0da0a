"""triplet_loss / triplet_statistics pick a strategy by name and pass every option on."""

import numpy as np
import pytest
import tensorflow as tf

import tftriplet
from tftriplet_conformance import reference


@pytest.mark.parametrize(
    "strategy, options",
    [
        ("batch_all", {"distance": "cosine", "soft": True}),
        ("batch_all", {"distance": "squared_euclidean", "method": "sorted"}),
        ("batch_hard", {"distance": "squared_euclidean", "soft": True}),
        ("semi_hard", {"distance": "cosine"}),
    ],
)
def test_by_name_is_the_strategys_own_function(strategy, options):
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 5)
    x = rng.normal(size=(20, 3))
    by_name = tftriplet.triplet_statistics(labels, x, strategy, 0.3, **options)
    own = getattr(tftriplet, f"{strategy}_triplet_statistics")(labels, x, 0.3, **options)
    assert by_name.keys() == own.keys()
    for key in own:
        assert float(by_name[key]) == float(own[key]), key
    distance = options.get("distance", "euclidean")
    ref = reference.triplet_loss(labels, x, strategy, 0.3, distance, options.get("soft", False))
    np.testing.assert_allclose(float(by_name["loss"]), ref["loss"], rtol=1e-9)


def test_method_reaches_batch_all(largest_traced):
    """method="sorted" is honoured: an error for the soft margin, and no B^3 tensor."""
    with pytest.raises(ValueError, match="method='sorted'"):
        tftriplet.triplet_loss([0, 0, 1, 1], np.eye(4), "batch_all", soft=True, method="sorted")
    b = 48
    labels = tf.constant(np.arange(b) % 6, dtype="int64")

    def value_and_grad(e):
        with tf.GradientTape() as tape:
            tape.watch(e)
            value = tftriplet.triplet_loss(labels, e, strategy="batch_all", method="sorted")
        return value, tape.gradient(value, e)

    assert largest_traced(value_and_grad, tf.TensorSpec((b, 8), "float32")) <= b * b


def test_method_is_only_for_batch_all():
    with pytest.raises(ValueError, match="batch_hard has one method"):
        tftriplet.triplet_loss([0, 0, 1, 1], np.eye(4), "batch_hard", method="sorted")
