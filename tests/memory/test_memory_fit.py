"""`model.fit` with a cross-batch memory under TensorFlow (graph and XLA), JAX and PyTorch.

Each backend runs tests/memory/fit_run.py in its own process (Keras fixes the backend per
process). The run is replayed here, independently of Keras: the embeddings of every step
are the recorded weights applied to the step's batch in float64, and the float64 pooled
reference (`reference.memory_steps`) gives every step's loss. fit's losses must equal it,
differ from the same fit without the memory, and the memory must end holding the last
training samples: `fit`'s validation batches never entered it.
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

from tftriplet_conformance import reference

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from fit_run import BATCH, MARGIN, MEMORY, WARMUP  # noqa: E402


def run_backend(backend, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (the tensorflow tox env has it)")
    out = tmp_path / f"{backend}.json"
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, str(HERE / "fit_run.py"), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["backend"] == backend
    return result


def per_step(logged):
    """Each step's loss from Keras' running means over the epoch."""
    return [(i + 1) * m - i * (logged[i - 1] if i else 0.0) for i, m in enumerate(logged)]


def replay(result, run, strategy):
    """The float64 reference of every step of `run`, from its recorded weights."""
    x, y = np.array(result["x"]), np.array(result["y"])
    steps = []
    for i, (kernel, bias) in enumerate(run["weights"]):
        rows = slice(i * BATCH, (i + 1) * BATCH)
        steps.append((y[rows], x[rows] @ np.array(kernel) + np.array(bias)))
    memory_size, warmup = (MEMORY, WARMUP) if "memory_labels" in run else (0, 0)
    outputs = reference.memory_steps(steps, memory_size, warmup, strategy, MARGIN)
    return [o["loss"] for o in outputs], steps


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_fit_trains_with_the_memory_as_the_reference_does(backend, tmp_path):
    result = run_backend(backend, tmp_path)
    assert len(result["runs"]) == (6 if backend == "tensorflow" else 3)
    for name, runs in result["runs"].items():
        strategy = name.rsplit("-", 1)[0]
        memory, alone = runs["memory"], runs["alone"]
        expected, steps = replay(result, memory, strategy)
        np.testing.assert_allclose(per_step(memory["logged"]), expected, rtol=1e-5,
                                   atol=1e-5, err_msg=name)
        # the memory is in effect: the same fit without it trains otherwise
        assert np.max(np.abs(np.subtract(per_step(memory["logged"]),
                                         per_step(alone["logged"])))) > 1e-2, name
        np.testing.assert_allclose(per_step(alone["logged"]), replay(result, alone, strategy)[0],
                                   rtol=1e-5, atol=1e-5, err_msg=name)
        # it holds the last MEMORY training samples: no validation batch entered it
        assert memory["memory_labels"] == np.array(result["y"])[-MEMORY:].tolist(), name
        assert memory["memory_steps"] == len(steps), name
    if backend == "jax":  # stateless: without attach_memory the state would be dropped
        assert "tftriplet.attach_memory(model)" in result["unattached"]
    else:  # in place: fit trains, but validation would use the memory
        assert result["unattached"] is None
