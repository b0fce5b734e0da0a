"""cross_replica=True: global-batch mining under tf.distribute (issue 7).

The strategy tests run tests/distributed_step.py in fresh processes (logical CPU devices and
MultiWorkerMirroredStrategy must be configured before TensorFlow initialises), each bounded
by a timeout, and compare against one device on the global batch and against the float64
loop reference in tftriplet_conformance/reference.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
from distributed_step import LABELS, initial_weights, logged_loss_factor  # noqa: E402
from processes import (  # noqa: E402
    finish,
    max_weight_difference,
    run_workers,
    spawn,
    worker_env,
)

from tftriplet import BatchAllTripletLoss, TripletLoss  # noqa: E402
from tftriplet.masks import anchor_pair_masks  # noqa: E402
from tftriplet_conformance import reference  # noqa: E402

SCRIPT = Path(__file__).with_name("distributed_step.py")
TF_ONLY = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.distribute needs the TF backend"
)
WEIGHT_TOLERANCE = 1e-5


def _run_script(tmp_path, *args, timeout=240):
    out = tmp_path / ("-".join(args) + ".json")
    finish(spawn(SCRIPT, args, out, worker_env()), timeout)
    return json.loads(out.read_text())


# ---------------------------------------------------------------- in-process, no strategy


def _case(seed, batch=12, dim=3, classes=3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=batch).astype(np.int64)
    embeddings = rng.normal(size=(batch, dim)).astype(np.float32)
    return labels, embeddings


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cross_replica_outside_a_strategy_is_the_plain_loss(seed):
    labels, embeddings = _case(seed)
    plain = BatchAllTripletLoss(margin=0.3)
    cross = BatchAllTripletLoss(margin=0.3, cross_replica=True)
    assert float(cross(labels, embeddings)) == float(plain(labels, embeddings))


@TF_ONLY
def test_cross_replica_with_one_replica_is_the_plain_loss():
    import tensorflow as tf

    labels, embeddings = _case(4)
    plain = float(BatchAllTripletLoss(margin=0.3)(labels, embeddings))
    cross = BatchAllTripletLoss(margin=0.3, cross_replica=True)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    value = strategy.run(tf.function(lambda: cross(labels, embeddings)))
    assert float(value) == plain
    with strategy.scope():  # cross-replica context: no replica to gather from
        assert float(cross(labels, embeddings)) == plain


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_anchor_terms_over_a_partition_give_the_reference_loss(seed):
    """The split each replica computes: summed over any partition of the anchors, the
    numerators over the summed positive counts is the float64 loop reference."""
    labels, embeddings = _case(seed, batch=13)
    expected = reference.batch_all(labels, embeddings, 0.3)
    rng = np.random.default_rng(seed)
    order = rng.permutation(13)
    parts = np.split(order, [3, 4, 9])  # uneven, one part of a single anchor
    total, count = 0.0, 0.0
    loss = BatchAllTripletLoss(margin=0.3, cross_replica=True)
    for part in parts:
        numerator, denominator = loss.anchor_terms(labels, embeddings, part.astype(np.int32))
        total += float(numerator)
        count += float(denominator)
    assert count == expected["num_positive"]
    assert total / max(count, 1.0) == pytest.approx(expected["loss"], rel=1e-5)


def test_anchor_pair_masks_make_rows_of_the_reference_mask():
    labels, _ = _case(5, batch=9)
    rows = np.array([7, 0, 4], dtype=np.int32)
    positive, negative = (keras.ops.convert_to_numpy(m) for m in anchor_pair_masks(labels, rows))
    mask = positive[:, :, None] & negative[:, None, :]
    np.testing.assert_array_equal(mask, reference.triplet_mask(labels)[rows])


def test_config_round_trip_keeps_cross_replica():
    loss = BatchAllTripletLoss(margin=0.4, cross_replica=True)
    config = loss.get_config()
    assert config["cross_replica"] is True
    restored = BatchAllTripletLoss.from_config(config)
    assert restored.cross_replica and restored.margin == 0.4
    assert BatchAllTripletLoss().cross_replica is False


def test_cross_replica_needs_anchor_terms():
    class PlainOnly(TripletLoss):
        def compute(self, labels, embeddings):
            return keras.ops.sum(embeddings)

    PlainOnly()  # fine without cross_replica
    with pytest.raises(ValueError, match="PlainOnly does not implement anchor_terms"):
        PlainOnly(cross_replica=True)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_cross_replica_is_the_plain_loss_on_other_backends(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed in this environment")
    code = (
        "import numpy as np\n"
        "from tftriplet import BatchAllTripletLoss\n"
        "rng = np.random.default_rng(0)\n"
        "y = rng.integers(0, 3, size=10); e = rng.normal(size=(10, 3)).astype('float32')\n"
        "a = float(BatchAllTripletLoss(cross_replica=True)(y, e))\n"
        "b = float(BatchAllTripletLoss()(y, e))\n"
        "assert a == b and a > 0, (a, b)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=worker_env(KERAS_BACKEND=backend),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]


# ---------------------------------------------------------------- MirroredStrategy


@TF_ONLY
@pytest.mark.parametrize("num_replicas, split", [(2, "even"), (4, "even"), (2, "uneven")])
def test_all_gather_gradient_reaches_the_owning_replica(tmp_path, num_replicas, split):
    """Each replica's tape gradient w.r.t. its own embeddings is its rows of the global
    loss's gradient: the remote replicas' terms arrive through all_gather's gradient.
    Also with unequal local batch sizes (5 and 11 rows)."""
    result = _run_script(tmp_path, "gradient", str(num_replicas), split)
    expected = reference.batch_all(np.array(result["labels"]), np.array(result["embeddings"]), 0.2)
    assert sum(result["losses"]) == pytest.approx(expected["loss"], rel=1e-5)
    np.testing.assert_allclose(result["gradient"], expected["gradient"], atol=1e-6)
    assert np.abs(expected["gradient"]).max() > 1e-2  # a gradient worth comparing


@TF_ONLY
@pytest.mark.parametrize("num_replicas", [2, 4])
def test_mirrored_fit_step_matches_one_device(tmp_path, num_replicas):
    result = _run_script(tmp_path, "mirrored", str(num_replicas))
    single, cross = result["single"], result["cross_replica"]
    per_replica, per_replica_ref = result["per_replica"], result["per_replica_reference"]

    # The single-device step is the loss of the global batch (float64 reference) ...
    initial = np.array(single["initial_embeddings"])
    expected = reference.batch_all(LABELS, initial, 0.2)
    assert single["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    moved = max_weight_difference(single["weights"], initial_weights())
    assert moved > 1e-2, "the step must move the weights for the comparison to mean anything"

    # ... and cross-replica mode reproduces it: weights and reported loss.
    assert max_weight_difference(cross["weights"], single["weights"]) < WEIGHT_TOLERANCE
    factor = logged_loss_factor(num_replicas)
    assert cross["loss"] * factor == pytest.approx(single["loss"], rel=1e-6)

    # Per-replica mode mines each slice alone: fewer triples, a different step, which is
    # exactly SGD on the mean of the slices' losses.
    assert sum(result["per_replica_valid"]) < result["global_valid"]
    assert max_weight_difference(per_replica["weights"], single["weights"]) > 1e-2
    assert max_weight_difference(per_replica["weights"], per_replica_ref["weights"]) < (
        WEIGHT_TOLERANCE
    )
    assert per_replica["loss"] * factor == pytest.approx(per_replica_ref["loss"], rel=1e-6)


# ---------------------------------------------------------------- MultiWorkerMirroredStrategy


@TF_ONLY
def test_multi_worker_step_matches_one_device(tmp_path):
    single = _run_script(tmp_path, "single")["single"]
    for worker in run_workers(SCRIPT, ["worker"], tmp_path, timeout=180):
        assert worker["num_replicas"] == 2
        assert worker["local_batch_sizes"] == [8, 8]
        assert max_weight_difference(worker["weights"], single["weights"]) < WEIGHT_TOLERANCE
        assert worker["loss"] == pytest.approx(single["loss"], rel=1e-6)
