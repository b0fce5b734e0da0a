"""Parametrization tables and the engine shims shared by the test folders (the other helper
functions are fixtures in conftest.py)."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[1])

#: (strategy, soft) pairs that exist: semi-hard has no soft form.
VARIANTS = [
    ("batch_all", False),
    ("batch_all", True),
    ("batch_hard", False),
    ("batch_hard", True),
    ("semi_hard", False),
]
DISTANCES = ("euclidean", "squared_euclidean", "cosine")
ALL_CASES = [(n, s, d) for (n, s), d in itertools.product(VARIANTS, DISTANCES)]


def case_id(case):
    name, soft, distance = case
    return f"{name}-{'soft' if soft else 'hinge'}-{distance}"


def pk_labels(num_classes, per_class, seed=0):
    """`per_class` labels of each of `num_classes` classes, shuffled by `seed`."""
    import numpy as np

    labels = np.repeat(np.arange(num_classes), per_class)
    np.random.default_rng(seed).shuffle(labels)
    return labels


def batch_all_sorted(labels, embeddings, margin, squared, with_gradient=True, row_sort="auto",
                     anchor_block=None, distance=None):
    """Batch-all statistics by the counting kernels (`method="sorted"`); `row_sort` forces
    the class kernel (`"positives"`) or the whole-row sort (`"merged"`)."""
    from tftriplet import engine
    from tftriplet.distances import resolve_distance
    from tftriplet.inputs import standardize_inputs

    labels, embeddings = standardize_inputs(labels, embeddings)
    return engine.batch_all_statistics(
        labels, embeddings, margin, distance or resolve_distance(squared=squared),
        method="sorted", row_sort=row_sort, anchor_block=anchor_block,
        with_gradient=with_gradient,
    )


def statistics_and_gradient(statistics, labels, embeddings, mode="eager", dtype="float64"):
    """`statistics(y, x)` (a dict with `"loss"`) and the gradient of its loss, as floats and
    an array, run in `mode`: `"eager"`, `"graph"`, `"xla"`, or `"unknown"`/`"xla unknown"`
    (traced with the batch size unknown)."""
    import numpy as np
    import tensorflow as tf

    x = tf.constant(np.asarray(embeddings), dtype=dtype)
    y = tf.constant(np.asarray(labels))

    def step(y, e):
        with tf.GradientTape() as tape:
            tape.watch(e)
            stats = statistics(y, e)
        return stats, tape.gradient(stats["loss"], e)

    if mode in ("unknown", "xla unknown"):
        spec = [tf.TensorSpec([None], y.dtype), tf.TensorSpec([None, x.shape[1]], dtype)]
        step = tf.function(step, input_signature=spec, jit_compile=(mode == "xla unknown"))
    elif mode != "eager":
        step = tf.function(step, jit_compile=(mode == "xla"))
    stats, grad = step(y, x)
    out = {k: float(v) for k, v in stats.items()}
    out["gradient"] = grad.numpy()
    return out


def spy_on_kernels(monkeypatch):
    """Record which counting kernel each call (or trace) goes through, by the plan's name:
    `"search"`, `"compare"`, `"fused"` or `"merged"`."""
    from tftriplet.engine import counting, fused

    calls = []
    for module, name, kind in ((counting, "search_weights", "search"),
                               (counting, "compare_weights", "compare"),
                               (counting, "slot_weights", "compare"),
                               (counting, "merged_weights", "merged"),
                               (fused, "fused_slopes", "fused")):
        original = getattr(module, name)

        def spy(*args, _original=original, _kind=kind):
            calls.append(_kind)
            return _original(*args)

        monkeypatch.setattr(module, name, spy)
    return calls


def clusters_npz(path, classes=6, per_class=30, seed=0, **overrides):
    """Gaussian clusters in 10-D: an easy, generated dataset for the --data path."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(classes, 10))
    y = np.repeat(np.arange(classes), per_class)
    x = centres[y] + rng.normal(size=(len(y), 10))
    arrays = {"x": x, "y": y}
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return str(path)


def run_in_backend(backend, script, case):
    """The JSON that `script` prints last, run as `python -c script <case as JSON>` in a
    fresh process under Keras' `backend`, with this checkout importable."""
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=REPO)
    done = subprocess.run([sys.executable, "-c", script, json.dumps(case)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
