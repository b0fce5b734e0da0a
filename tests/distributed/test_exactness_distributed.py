"""cross_replica=True under every distribution: one SGD step equals one device.

For every loss in exactness_step.LOSSES (batch-all hinge, soft and cosine, batch-hard,
semi-hard), the weights after one SGD step match one device on the global batch within
1e-5: under MirroredStrategy (Keras fit over 2 replicas; a custom step over 4 replicas
with uneven local batch sizes, one of them empty), under two MultiWorkerMirroredStrategy
workers on loopback, and under Keras' JAX ``DataParallel`` over 2 host devices. The traced
4-replica step also bounds every tensor by ``b * B``: a replica mines its ``b`` anchors
against the gathered batch, never a global ``B x B`` matrix.

Each kind of distribution is one fresh process (tests/distributed/exactness_step.py) that
covers every loss, so the processes start once per module, not once per case. The
one-device losses are checked against the float64 loop reference.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest
from distributed_step import GLOBAL_BATCH, LABELS, MARGIN, initial_weights, logged_loss_factor
from exactness_step import LOSSES, UNEVEN_SIZES, loss_id
from processes import (
    finish,
    kill_running,
    max_weight_difference,
    run_workers,
    spawn,
    worker_env,
)

from tftriplet_conformance import reference

SCRIPT = Path(__file__).with_name("exactness_step.py")
TF_ONLY = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.distribute needs the TF backend"
)
WEIGHT_TOLERANCE = 1e-5
#: Ops whose outputs may have any unknown shape in the traced step: the all-gather's own
#: plumbing (its name scope, B x D data), Identity ops and a function body's Placeholder
#: inputs (they forward a buffer, allocating nothing) and the gradient's shape arithmetic
#: (small int vectors).
UNSHAPED_OK = ("Identity", "IdentityN", "Placeholder", "BroadcastGradientArgs")


def _jax_env():
    flags = os.environ.get("XLA_FLAGS", "")
    return {
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=2".strip(),
    }


def _missing_for_jax():
    """Why the DataParallel check cannot run here, or None."""
    for module in ("jax", "tensorflow"):
        if importlib.util.find_spec(module) is None:
            return (
                f"{module} is not installed in this environment: the DataParallel check runs "
                "Keras' JAX backend over 2 host devices (and reuses the TensorFlow harness)"
            )
    return None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The mirrored and JAX processes, started together (each mostly keeps one core busy),
    as ``{mode: result, or the reason it did not run}``."""
    folder = tmp_path_factory.mktemp("exactness")
    started, results = {}, {}
    if keras.backend.backend() == "tensorflow":
        started["mirrored"] = spawn(SCRIPT, ["mirrored"], folder / "mirrored.json", worker_env())
    else:
        results["mirrored"] = "tf.distribute needs the TF backend"
    results["jax"] = _missing_for_jax()
    if results["jax"] is None:
        started["jax"] = spawn(SCRIPT, ["jax"], folder / "jax.json", worker_env(**_jax_env()))
    try:
        for mode, proc in started.items():
            finish(proc, timeout=300)
            results[mode] = json.loads((folder / f"{mode}.json").read_text())
    finally:
        kill_running(started.values())
    return results


def _result(runs, mode):
    if isinstance(runs[mode], str):
        pytest.skip(runs[mode])
    return runs[mode]


def _check_one_device(single, loss):
    """The one-device step is the float64 reference loss, and it moves the weights."""
    initial = np.array(single["initial_embeddings"])
    expected = reference.triplet_loss(LABELS, initial, margin=MARGIN, **loss)["loss"]
    assert single["loss"] == pytest.approx(expected, rel=1e-5)
    moved = max_weight_difference(single["weights"], initial_weights())
    assert moved > 1e-2, "the step must move the weights for the comparison to mean anything"


@pytest.fixture(scope="module")
def mirrored(runs):
    return _result(runs, "mirrored")


@pytest.fixture(scope="module")
def data_parallel(runs):
    return _result(runs, "jax")


# ---------------------------------------------------------------- MirroredStrategy


@TF_ONLY
@pytest.mark.parametrize("loss", LOSSES, ids=loss_id)
def test_fit_on_two_replicas_matches_one_device(mirrored, loss):
    result = mirrored[loss_id(loss)]
    single, cross = result["single"], result["fit_2"]
    _check_one_device(single, loss)
    assert max_weight_difference(cross["weights"], single["weights"]) < WEIGHT_TOLERANCE
    assert cross["loss"] * logged_loss_factor(2) == pytest.approx(single["loss"], rel=1e-6)


@TF_ONLY
@pytest.mark.parametrize("loss", LOSSES, ids=loss_id)
def test_uneven_step_on_four_replicas_matches_one_device(mirrored, loss):
    """Local batches of 5, 0, 4 and 7 rows (int64 class ids above 2**24): the loss shares
    sum to the one-device loss, the empty replica's share is 0, and the weights after the
    step are the one-device weights."""
    result = mirrored[loss_id(loss)]
    single, cross = result["single"], result["uneven_4"]
    assert cross["local_batch_sizes"] == list(UNEVEN_SIZES) and 0 in UNEVEN_SIZES
    assert sum(cross["losses"]) == pytest.approx(single["loss"], rel=1e-5)
    assert cross["losses"][UNEVEN_SIZES.index(0)] == 0.0
    assert max_weight_difference(cross["weights"], single["weights"]) < WEIGHT_TOLERANCE


#: The strategies whose replicas mine their own rows. (Batch-all's cross-replica share
#: becomes row-wise with its anchor-blocked kernel; the trace of every loss is recorded.)
ROW_WISE = [loss for loss in LOSSES if loss["strategy"] in ("batch_hard", "semi_hard")]


@TF_ONLY
@pytest.mark.parametrize("loss", ROW_WISE, ids=loss_id)
def test_a_replica_never_builds_a_global_square_tensor(mirrored, loss):
    """Every tensor of the traced 4-replica step (loss and gradient, loop bodies and
    branches included) has at most b * B elements, b = 7 the largest local batch and B = 16
    the global one: the replicas mine their rows of the distance matrix, never the B x B
    matrix (256 elements)."""
    trace = mirrored[loss_id(loss)]["uneven_4"]["trace"]
    bound = max(UNEVEN_SIZES) * GLOBAL_BATCH
    assert bound < GLOBAL_BATCH**2
    assert trace["largest"] <= bound
    # Outputs without a full static shape: each unknown size taken as B.
    for op_type, name, shape in trace["unknown_shape_ops"]:
        if "allgather" in name or op_type in UNSHAPED_OK:
            continue
        assert shape is not None, (op_type, name)
        assert np.prod([GLOBAL_BATCH if n is None else n for n in shape]) <= bound, (name, shape)


# ---------------------------------------------------------------- MultiWorkerMirroredStrategy


@TF_ONLY
def test_two_workers_match_one_device(mirrored, tmp_path):
    """Two MultiWorkerMirroredStrategy processes on loopback, one step per loss each (a
    custom loop: Keras 3's fit does not run under this strategy)."""
    for worker in run_workers(SCRIPT, ["worker"], tmp_path, timeout=300):
        assert worker["num_replicas"] == 2
        for loss in LOSSES:
            single, step = mirrored[loss_id(loss)]["single"], worker[loss_id(loss)]
            assert step["local_batch_sizes"] == [GLOBAL_BATCH // 2] * 2
            assert max_weight_difference(step["weights"], single["weights"]) < WEIGHT_TOLERANCE
            assert step["loss"] == pytest.approx(single["loss"], rel=1e-6)


# ---------------------------------------------------------------- JAX DataParallel


@pytest.mark.parametrize("loss", LOSSES, ids=loss_id)
def test_jax_data_parallel_fit_matches_one_device(data_parallel, loss):
    """keras.distribution.DataParallel over 2 host devices: the loss sees the global
    (sharded) batch, and one fit step gives the one-device weights."""
    assert len(data_parallel["devices"]) == 2
    result = data_parallel[loss_id(loss)]
    single, parallel = result["single"], result["data_parallel"]
    _check_one_device(single, loss)
    assert parallel["kernel_devices"] == 2  # the variables live on both devices
    assert max_weight_difference(parallel["weights"], single["weights"]) < WEIGHT_TOLERANCE
    assert parallel["loss"] == pytest.approx(single["loss"], rel=1e-6)
