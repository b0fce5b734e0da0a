import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# helpers.py (parametrization tables) is shared by the test folders
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Deterministic examples, so a CI run is reproducible (and a failure re-runs the same way);
# HYPOTHESIS_PROFILE=explore draws fresh examples for a local search.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def seed_case():
    """The seed program's inputs, drawn with the pure-Python glibc rand()."""
    from tftriplet_conformance.glibc_rand import seed_program_inputs

    return seed_program_inputs()


# --- shared helpers: drawing cases away from ties, gradients -----------------------------


def _clear_of_ties(labels, embeddings, margin, distance="euclidean", strategy="batch_hard",
                   tol=1e-4):
    """True when no decision of ``strategy`` sits within ``tol`` of a tie.

    The decisions are the reference's ``decision_values``: every hinge, for the mining
    strategies every pair of distances in an anchor's row, and Euclidean distances near 0
    (batch-hard's are a superset of batch-all's). Counts, selections and subgradients are
    then stable under rounding and finite differences.
    """
    import numpy as np

    from tftriplet_conformance import reference

    values = reference.decision_values(labels, embeddings, strategy, margin, distance)
    return values.size == 0 or bool(np.min(np.abs(values)) >= tol)


def _random_case(rng, batch_size, dim, num_classes, scale=1.0):
    """Random labels and normal embeddings; every class has >= 2 members when
    ``batch_size >= 2 * num_classes`` (else ``min(num_classes, batch_size // 2)`` classes
    do, and the rest of the batch is drawn freely)."""
    import numpy as np

    paired = min(num_classes, batch_size // 2)
    free = rng.integers(0, num_classes, size=batch_size - 2 * paired)
    labels = rng.permutation(np.concatenate([np.repeat(np.arange(paired), 2), free]))
    embeddings = rng.normal(size=(batch_size, dim)) * scale
    return labels.astype("int64"), embeddings


def _draw_case(rng, batch_size, dim, num_classes, margin, distance, scale=1.0):
    """Random labels and float64 embeddings, redrawn until clear of ties (batch-hard's
    decisions, which include batch-all's)."""
    for _ in range(100):
        labels = rng.integers(0, num_classes, size=batch_size).astype("int64")
        embeddings = rng.normal(size=(batch_size, dim)) * scale
        if _clear_of_ties(labels, embeddings, margin, distance):
            return labels, embeddings
    raise AssertionError("could not draw a case clear of ties")


def _tf_value_and_gradient(fn, embeddings):
    """``fn(embeddings)`` and its gradient with TensorFlow, as NumPy."""
    import numpy as np
    import tensorflow as tf

    x = tf.Variable(embeddings)
    with tf.GradientTape() as tape:
        value = fn(x)
    gradient = tape.gradient(value, x)
    gradient = np.zeros_like(embeddings) if gradient is None else gradient.numpy()
    return value.numpy(), gradient


def _largest_tensor(graph):
    """Entries of the largest statically shaped tensor of a traced TensorFlow graph, the
    bodies of its loops and branches (its function library) included."""
    import numpy as np

    def graphs(g):
        yield g
        for f in getattr(g, "_functions", {}).values():
            if getattr(f, "graph", None) is not None:
                yield from graphs(f.graph)

    return max(
        int(np.prod(t.shape.as_list()))
        for g in graphs(graph)
        for op in g.get_operations()
        for t in op.outputs
        if t.shape.rank is not None and t.shape.is_fully_defined()
    )


@pytest.fixture(scope="session")
def largest_tensor():
    """``largest_tensor(graph)``: entries of its largest statically shaped tensor."""
    return _largest_tensor


@pytest.fixture(scope="session")
def largest_traced():
    """``largest_traced(fn, spec)``: the largest tensor of ``fn`` traced for ``spec``."""
    import tensorflow as tf

    return lambda fn, spec: _largest_tensor(tf.function(fn).get_concrete_function(spec).graph)


@pytest.fixture(scope="session")
def clear_of_ties():
    """``clear_of_ties(labels, embeddings, margin, distance, strategy, tol)``."""
    return _clear_of_ties


@pytest.fixture(scope="session")
def random_case():
    """``random_case(rng, batch_size, dim, num_classes, scale=1.0) -> (labels, x)``."""
    return _random_case


@pytest.fixture(scope="session")
def draw_case():
    """``draw_case(rng, batch_size, dim, num_classes, margin, distance) -> (labels, x)``,
    clear of ties."""
    return _draw_case


@pytest.fixture(scope="session")
def tf_value_and_gradient():
    """``tf_value_and_gradient(fn, embeddings) -> (value, gradient)`` as NumPy."""
    return _tf_value_and_gradient


# --- which tests ran: every tox environment writes a report, tests/unrun.py joins them ----

_REPORT = os.environ.get("TFTRIPLET_TEST_REPORT")
_collected = []
_outcomes = {}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Record every collected test before ``-m``/``-k`` deselect any."""
    _collected.extend(item.nodeid for item in items)


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        previous = _outcomes.get(report.nodeid)
        if previous != "failed":  # a failure in any phase sticks
            _outcomes[report.nodeid] = report.outcome


def pytest_collectreport(report):
    if report.outcome == "skipped":  # a whole module skipped at import
        _outcomes[report.nodeid] = "skipped"


def pytest_sessionfinish(session, exitstatus):
    if _REPORT:
        Path(_REPORT).parent.mkdir(parents=True, exist_ok=True)
        payload = {"collected": sorted(set(_collected)), "outcomes": _outcomes}
        Path(_REPORT).write_text(json.dumps(payload, indent=1, sort_keys=True))
