"""cross_replica=True with a cross-batch memory: 2 replicas train as one device does.

tests/distributed/memory_fit.py runs five steps of `fit` with a memory (size 12, one
warm-up step, global batches of 8) under MirroredStrategy on 2 logical CPUs and on one
device, in fresh processes. The memory holds the gathered global batches, the same on
every replica: the weights, the losses and the memory's contents agree.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from processes import finish, max_weight_difference, spawn, worker_env

SCRIPT = Path(__file__).with_name("memory_fit.py")


def _run(tmp_path, *args, **env):
    out = tmp_path / ("-".join(args) + ".json")
    finish(spawn(SCRIPT, args, out, worker_env(**env)), 300)
    return json.loads(out.read_text())


@pytest.mark.parametrize("strategy", ["batch_all", "semi_hard"])
def test_two_replicas_with_a_memory_train_as_one_device(strategy, tmp_path):
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tf.distribute needs TensorFlow")
    single = _run(tmp_path, "single", TFTRIPLET_MEMORY_STRATEGY=strategy)
    mirrored = _run(tmp_path, "mirrored", "2", TFTRIPLET_MEMORY_STRATEGY=strategy)
    assert max_weight_difference(single["weights"], mirrored["weights"]) <= 1e-5
    np.testing.assert_allclose(mirrored["losses"], single["losses"], rtol=1e-5)
    assert mirrored["memory_labels"] == single["memory_labels"]
    assert len(single["memory_labels"]) == 12 and single["memory_steps"] == 5
    np.testing.assert_allclose(mirrored["memory_embeddings"], single["memory_embeddings"],
                               atol=1e-5)


def test_a_memory_under_several_replicas_needs_cross_replica(tmp_path):
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tf.distribute needs TensorFlow")
    error = _run(tmp_path, "refused", "2")["error"]
    assert "with 2 replicas needs cross_replica=True" in error, error
