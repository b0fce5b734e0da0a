"""Backend adapters: one small interface, one module per backend.

An adapter has a `name`, the `dtypes` it runs, whether it is `differentiable` (then it
must return the gradient), and these methods:

- `available() -> (bool, reason)`: can it run here (compiler, framework installed)?
- `supports(fixture) -> (bool, reason)`: does it implement the fixture's loss variant?
- `prepare(fixtures)`: one-time work (compile, start a subprocess and run them all).
- `run(fixture, dtype) -> {mode: outputs}`: outputs is a dict like the fixture's
  `expected` (scalars, `gradient` as nested lists, maybe `printed`), or
  `{"error": message}`. A backend with several execution modes (eager, tf.function,
  XLA) returns one entry per mode. It may raise `Unsupported` instead of `supports`
  saying so beforehand (a process learns it from its implementation's reply).
- `close()`: release what `prepare` started (a process); called once at the end.

An adapter may claim optional features of the contract in `features` (e.g.
`("memory",)`, `tftriplet_conformance.optional`); only then does it get their
fixtures. The fixture an adapter receives is a copy without `expected`.
"""

from __future__ import annotations

from tftriplet_conformance.variants import variant_of


class Unsupported(Exception):
    """Raised by `run` for a fixture the implementation does not implement (`n/a`),
    with the reason. It must then be raised for every dtype of that fixture."""


class BrokenAdapter:
    """Stands for an adapter that could not be loaded: its failure, under its name."""

    def __init__(self, name, fault):
        self.name, self.fault = name, fault


class Adapter:
    """Base class: defaults for a backend that runs every variant it has a table entry for."""

    name = ""
    dtypes = ("float64",)
    differentiable = False
    #: Outputs of `expected` this backend cannot produce: not compared (peers only).
    not_reported = ()
    #: Declared semantic differences (`tftriplet_conformance.differs.Difference`).
    differences = ()
    #: The optional features it implements (`tftriplet_conformance.optional.FEATURES`).
    features = ()

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

    def close(self):
        """Nothing to release by default."""


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
    """The adapters of other libraries' triplet losses (`docs/peers.md`)."""
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
    """An adapter from `"package.module:Name"`: an `Adapter` instance, or a class
    whose constructor takes no arguments.

    Raises `UsageError` when `spec` is not of that form, and `ValueError` naming what
    is wrong when the module, the name or the object is (with the file and line of an
    exception its import or constructor raised).
    """
    import importlib

    from tftriplet_conformance.errors import UsageError
    from tftriplet_conformance.guard import describe

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"--adapter expects 'package.module:Name'; got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if module_name != err.name and not module_name.startswith(f"{err.name}."):
            raise ValueError(f"cannot import {module_name!r}: {describe(err)}") from err
        raise ValueError(f"cannot import {module_name!r}: {err} (is it on PYTHONPATH?)") from err
    except Exception as err:  # the module's own code raised: where, with its file and line
        raise ValueError(f"cannot import {module_name!r}: {describe(err)}") from err
    try:
        obj = getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"{module_name!r} has no {attribute!r}") from None
    if isinstance(obj, type):
        try:
            obj = obj()
        except Exception as err:
            raise ValueError(f"its constructor {describe(err, obj)}") from err
    missing = [
        a for a in ("name", "dtypes", "differentiable", "available", "supports", "prepare", "run")
        if not hasattr(obj, a)
    ]
    if missing:
        raise ValueError(
            f"{attribute!r} is not an adapter (missing {missing}); "
            "subclass tftriplet_conformance.adapters.Adapter"
        )
    return obj


def load_or_broken(spec, name=None):
    """`load_adapter`, or a `BrokenAdapter` named `name` (default: `spec`)
    carrying why it could not be loaded. A `UsageError` (a malformed spec) propagates."""
    try:
        return load_adapter(spec)
    except ValueError as err:
        from tftriplet_conformance.errors import UsageError

        if isinstance(err, UsageError):
            raise
        return BrokenAdapter(name or spec, f"could not be loaded: {err}")


def entry_point_adapters():
    """Adapters installed packages register under `ENTRY_POINT_GROUP`; one that
    cannot be loaded is a `BrokenAdapter` under its entry point's name."""
    from importlib.metadata import entry_points

    adapters = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {ep.name!r} ({ep.value}"
        dist = getattr(ep, "dist", None)
        where += f", from {dist.name} {dist.version})" if dist is not None else ")"
        try:
            adapters.append(load_adapter(ep.value))
        except ValueError as err:  # a malformed value (UsageError) in the metadata included
            adapters.append(BrokenAdapter(ep.name, f"{where} could not be loaded: {err}"))
    return adapters
