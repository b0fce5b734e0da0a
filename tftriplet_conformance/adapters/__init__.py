"""Backend adapters: one small interface, one module per backend.

An adapter has a ``name``, the ``dtypes`` it runs, whether it is ``differentiable`` (then it
must return the gradient), and four methods:

- ``available() -> (bool, reason)``: can it run here (compiler, framework installed)?
- ``supports(fixture) -> (bool, reason)``: does it implement the fixture's loss variant?
- ``prepare(fixtures)``: one-time work (compile, start a subprocess and run them all).
- ``run(fixture, dtype) -> {mode: outputs}``: outputs is a dict like the fixture's
  ``expected`` (scalars, ``gradient`` as nested lists, maybe ``printed``), or
  ``{"error": message}``. A backend with several execution modes (eager, tf.function,
  XLA) returns one entry per mode.
"""

from __future__ import annotations

from tftriplet_conformance.variants import variant_of


class Adapter:
    """Base class: defaults for a backend that runs every variant it has a table entry for."""

    name = ""
    dtypes = ("float64",)
    differentiable = False
    #: Outputs of ``expected`` this backend cannot produce: not compared (peers only).
    not_reported = ()
    #: Declared semantic differences (:class:`~tftriplet_conformance.differs.Difference`).
    differences = ()

    def available(self):
        return True, ""

    def supports(self, fixture):
        try:
            variant_of(fixture)
        except KeyError as err:
            return False, str(err)
        return True, ""

    def prepare(self, fixtures):
        """Nothing to prepare by default."""

    def run(self, fixture, dtype):
        raise NotImplementedError


def all_adapters():
    """Every adapter, in the order the matrix shows them: the project's, then the peers'."""
    return [*own_adapters(), *peer_adapters()]


def own_adapters():
    """The project's own backends: held to every output, with no declared differences."""
    from tftriplet_conformance.adapters.c import CAdapter
    from tftriplet_conformance.adapters.keras_backends import KerasAdapter
    from tftriplet_conformance.adapters.numpy import NumpyAdapter

    return [
        NumpyAdapter(),
        CAdapter(),
        KerasAdapter("tensorflow"),
        KerasAdapter("jax"),
        KerasAdapter("torch"),
    ]


def peer_adapters():
    """The adapters of other libraries' triplet losses (``docs/peers.md``)."""
    from tftriplet_conformance.adapters.pytorch_metric_learning_peer import (
        PyTorchMetricLearningAdapter,
    )
    from tftriplet_conformance.adapters.sentence_transformers_peer import (
        SentenceTransformersAdapter,
    )
    from tftriplet_conformance.adapters.tensorflow_peers import (
        TensorFlowAddonsAdapter,
        TensorFlowSimilarityAdapter,
    )

    return [
        PyTorchMetricLearningAdapter(),
        SentenceTransformersAdapter(),
        TensorFlowSimilarityAdapter(),
        TensorFlowAddonsAdapter(),
    ]


def backend_names():
    """The names of every adapter, in matrix order."""
    return [adapter.name for adapter in all_adapters()]


def peer_names():
    """The names of the peers' adapters."""
    return [adapter.name for adapter in peer_adapters()]


#: The entry point group through which installed packages offer adapters.
ENTRY_POINT_GROUP = "tftriplet_conformance.adapters"


def load_adapter(spec):
    """An adapter from ``"package.module:Name"``: an :class:`Adapter` instance, or a class
    whose constructor takes no arguments.

    Raises ``ValueError`` naming what is wrong with ``spec``.
    """
    import importlib

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"--adapter expects 'package.module:Name'; got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:
        raise ValueError(f"--adapter {spec}: cannot import {module_name!r}: {err}") from err
    try:
        obj = getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"--adapter {spec}: {module_name!r} has no {attribute!r}") from None
    adapter = obj() if isinstance(obj, type) else obj
    missing = [
        a for a in ("name", "dtypes", "differentiable", "available", "supports", "prepare", "run")
        if not hasattr(adapter, a)
    ]
    if missing or not getattr(adapter, "name", ""):
        raise ValueError(
            f"--adapter {spec}: not an adapter (missing {missing or ['name']}); "
            "subclass tftriplet_conformance.adapters.Adapter"
        )
    return adapter


def entry_point_adapters():
    """Adapters installed packages register under :data:`ENTRY_POINT_GROUP`."""
    from importlib.metadata import entry_points

    return [load_adapter(ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP)]
