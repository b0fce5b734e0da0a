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
    """Every adapter, in the order the matrix shows them."""
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



def backend_names():
    """The names of every adapter, in matrix order."""
    return [adapter.name for adapter in all_adapters()]
