"""``tftriplet bench``'s memory rows at toy sizes: a loss's training step with a full
cross-batch memory, on every backend, against the float64 pooled reference (speed is never
asserted here)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tftriplet
from tftriplet_cli.bench.memory import LOSS_METHODS, memory_inputs
from tftriplet_cli.bench.options import MEMORY_PRESET
from tftriplet_conformance import reference

# a batch of 8 (4 classes x 2), a memory of 24, D=3: three steps
BATCH, MEMORY, DIM, PER_CLASS, STEPS, MARGIN = 8, 24, 3, 2, 3, 0.2

STEPS_SCRIPT = """
import json
from tftriplet_cli.bench.memory import loss_step
step, sync = loss_step({method!r}, {backend!r}, {memory}, {batch}, {dim}, {per_class},
                         {margin}, False, steps={steps})
print(json.dumps([float(step()[0]) for _ in range({steps})]))
"""


def expected_losses(method, pushes=True):
    """The reference's loss at each step: the memory starts full (fed to it as one batch
    of `MEMORY` samples), and each batch enters it after its step unless `pushes` is off."""
    batches, labels, embeddings = memory_inputs(BATCH, MEMORY, DIM, PER_CLASS, STEPS)
    if not pushes:
        return [reference.pooled(y, x, labels, embeddings, method, MARGIN)["loss"]
                for y, x in batches]
    results = reference.memory_steps([(labels, embeddings), *batches], MEMORY,
                                     strategy=method, margin=MARGIN)
    return [r["loss"] for r in results[1:]]


def run_python(code, backend):
    """Run `code` in a fresh process of `backend`; return its output's JSON lines."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(tftriplet.__file__)))
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_each_step_mines_against_the_full_memory_which_each_batch_enters(backend):
    """Three steps of each loss in a fresh process of the backend: the first against the
    memory as filled, the next ones against it with the earlier batches in (JAX carries the
    memory's variables through its compiled step); and three steps without a memory."""
    code = "\n".join(
        STEPS_SCRIPT.format(method=m, backend=backend, memory=n, batch=BATCH, dim=DIM,
                            per_class=PER_CLASS, margin=MARGIN, steps=STEPS)
        for m in LOSS_METHODS for n in (MEMORY, 0)
    )
    printed = iter(run_python(code, backend))
    batches, _, _ = memory_inputs(BATCH, MEMORY, DIM, PER_CLASS, STEPS)
    unfilled, _, _ = memory_inputs(BATCH, 0, DIM, PER_CLASS, STEPS)  # the stream from its start
    for method in LOSS_METHODS:
        with_memory, without = next(printed), next(printed)
        expected = expected_losses(method)
        np.testing.assert_allclose(with_memory, expected, rtol=1e-5, err_msg=method)
        alone = [reference.triplet_loss(y, x, method, MARGIN)["loss"] for y, x in unfilled]
        np.testing.assert_allclose(without, alone, rtol=1e-5, err_msg=f"{method}, no memory")
        # The test can fail: the same batches alone, or a memory they never enter, differ.
        same_alone = [reference.triplet_loss(y, x, method, MARGIN)["loss"] for y, x in batches]
        assert not np.allclose(expected, same_alone, rtol=1e-3), method
        assert not np.allclose(expected[1:], expected_losses(method, pushes=False)[1:],
                               rtol=1e-3), method


def test_memory_rows_through_the_command(tmp_path, capsys):
    """Each row in its own process; the loss is the first step's, against the full memory."""
    from tftriplet_cli import main

    path = tmp_path / "bench.json"
    args = ["bench", "--sizes", str(BATCH), "--methods", "semi_hard", "--memory",
            f"{MEMORY},{2 * MEMORY}", "--dim", str(DIM), "--per-class", str(PER_CLASS),
            "--repeats", "1", "--margin", str(MARGIN), "--json", str(path)]
    assert main(args) == 0
    text = capsys.readouterr().out
    results = json.loads(path.read_text())["results"]
    assert [(r["method"], r["memory"]) for r in results] == [
        ("semi_hard", MEMORY), ("semi_hard", 2 * MEMORY)]
    for r in results:
        assert r["status"] == "ok", r
        assert r["peak_rss_bytes"] > 0 and r["median_s"] > 0
        batches, labels, embeddings = memory_inputs(BATCH, r["memory"], DIM, PER_CLASS, 1)
        expected = reference.pooled(*batches[0], labels, embeddings, r["method"], MARGIN)
        np.testing.assert_allclose(r["loss"], expected["loss"], rtol=1e-5)
    assert f"semi_hard, memory {2 * MEMORY} (tensorflow)" in text
    assert "full cross-batch memory of N samples" in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--methods", "sorted,batch_all"], "sorted take no memory"),
        (["--preset", "memory"], "not --preset memory"),
    ],
)
def test_memory_with_other_rows_is_refused(extra, message, capsys):
    from tftriplet_cli import main

    assert main(["bench", "--memory", "64", *extra]) == 2
    assert message in capsys.readouterr().err


def test_memory_preset_has_the_rows_of_the_issue():
    assert set(MEMORY_PRESET) == {(256, m, n) for m in LOSS_METHODS for n in (0, 4096, 65536)}


def test_loss_methods_are_the_demo_strategies():
    """`LOSS_METHODS` restates `STRATEGIES`' keys (the bench's parent imports no Keras)."""
    from tftriplet_cli.demo.model import STRATEGIES

    assert LOSS_METHODS == tuple(STRATEGIES)
