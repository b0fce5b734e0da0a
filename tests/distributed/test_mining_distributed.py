"""cross_replica=True for the mining losses: per-replica shares sum to the global loss.

Uses tests/distributed_step.py (MirroredStrategy over logical CPUs in a fresh process) with
$TFTRIPLET_TEST_LOSS naming the loss, and compares against the float64 loop reference.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from processes import finish, spawn, worker_env

import tftriplet
from tftriplet_conformance import reference

SCRIPT = Path(__file__).with_name("distributed_step.py")
TF_ONLY = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.distribute needs the TF backend"
)
LOSSES = [
    {"strategy": "batch_hard", "margin": 0.2, "distance": "cosine", "soft": True},
    {"strategy": "semi_hard", "margin": 0.2, "distance": "euclidean", "soft": False},
    {"strategy": "batch_all", "margin": 0.2, "distance": "squared_euclidean", "soft": True},
]
CLASSES = {
    "batch_all": tftriplet.BatchAllTripletLoss,
    "batch_hard": tftriplet.BatchHardTripletLoss,
    "semi_hard": tftriplet.SemiHardTripletLoss,
}


def loss_id(loss):
    return f"{loss['strategy']}-{loss['distance']}-{'soft' if loss['soft'] else 'hinge'}"


@pytest.mark.parametrize("loss", LOSSES, ids=loss_id)
def test_anchor_shares_over_a_partition_give_the_reference_loss(draw_case, loss):
    rng = np.random.default_rng(0)
    labels, x = draw_case(rng, 13, 3, 3, loss["margin"], loss["distance"])
    obj = CLASSES[loss["strategy"]](
        margin=loss["margin"], distance=loss["distance"], soft=loss["soft"], cross_replica=True
    )
    total, count = 0.0, 0.0
    for part in np.split(rng.permutation(13), [3, 4, 9]):  # uneven, one single anchor
        numerator, denominator = obj.anchor_terms(labels, x, part.astype("int32"))
        total += float(numerator)
        count += float(denominator)
    expected = reference.triplet_loss(labels, x, **loss)["loss"]
    np.testing.assert_allclose(total / max(count, 1.0), expected, rtol=1e-10)
    # Outside a strategy, cross_replica is the plain loss.
    np.testing.assert_allclose(float(obj(labels, x)), expected, rtol=1e-6)


def run_step(tmp_path, loss, *args):
    out = tmp_path / "out.json"
    env = worker_env(TFTRIPLET_TEST_LOSS=json.dumps(loss))
    finish(spawn(SCRIPT, args, out, env), timeout=300)
    return json.loads(out.read_text())


@TF_ONLY
@pytest.mark.parametrize("loss", LOSSES, ids=loss_id)
def test_replica_gradients_are_the_global_gradient(tmp_path, loss):
    """Two replicas of 5 and 11 rows: their loss shares sum to the global loss and each
    replica's gradient is its rows of the reference's global gradient."""
    result = run_step(tmp_path, loss, "gradient", "2", "uneven")
    labels, x = np.array(result["labels"]), np.array(result["embeddings"])
    expected = reference.triplet_loss(labels, x, **loss)
    assert sum(result["losses"]) == pytest.approx(expected["loss"], rel=1e-5)
    np.testing.assert_allclose(result["gradient"], expected["gradient"], rtol=1e-4, atol=1e-6)
    assert np.abs(expected["gradient"]).max() > 1e-2


@TF_ONLY
def test_mirrored_fit_step_matches_one_device(tmp_path):
    loss = LOSSES[1]
    result = run_step(tmp_path, loss, "mirrored", "2")
    single, cross = result["single"], result["cross_replica"]
    initial = np.array(single["initial_embeddings"])
    from distributed_step import LABELS, logged_loss_factor

    assert single["loss"] == pytest.approx(
        reference.triplet_loss(LABELS, initial, **loss)["loss"], rel=1e-5
    )
    for a, b in zip(cross["weights"], single["weights"], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert cross["loss"] * logged_loss_factor(2) == pytest.approx(single["loss"], rel=1e-6)
