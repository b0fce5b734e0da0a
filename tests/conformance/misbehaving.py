"""Adapters that each do one thing wrong, for the runner's own tests
(test_runner_faults.py): every way issue 18 found to fool the runner or to crash it.

Each is the float64 reference (`NumpyAdapter`, correct) with one fault, so that whatever
the runner reports is that fault. Importable as `misbehaving:Name` for `--adapter`.
"""

from __future__ import annotations

import atexit
import math
import os
import threading

from tftriplet_conformance.adapters.numpy import NumpyAdapter

ALL_OUTPUTS = ("loss", "fraction_positive", "num_positive", "num_valid", "num_anchors",
               "num_pairs")


class Good(NumpyAdapter):
    """The reference under another name: what every fault below starts from."""

    name = "good"

    def outputs(self, fixture, dtype):
        return super().run(fixture, dtype)["loops"]


def _with(name, **attributes):
    return type(name, (Good,), {"name": name.lower(), **attributes})


def _run(name, fn):
    """A `Good` whose run is `fn(self, fixture, dtype)`."""
    return _with(name, run=fn)


# -- exit 0 although nothing was checked ------------------------------------------------------

ReturnsNoModes = _run("ReturnsNoModes", lambda self, f, d: {})
ModeWithoutOutputs = _run("ModeWithoutOutputs", lambda self, f, d: {"m": {}})
EmptyDtypes = _with("EmptyDtypes", dtypes=())
ExemptsTheLoss = _with("ExemptsTheLoss", not_reported=ALL_OUTPUTS)
Unavailable = _with("Unavailable", available=lambda self: (False, "it needs a GPU"))
SupportsNothing = _with("SupportsNothing", supports=lambda self, f: (False, "implements nothing"))
PrintsOnly = _run("PrintsOnly", lambda self, f, d: {"m": {"printed": "The triplet loss is 0"}})


class ExitsInRun(Good):
    name = "exits-in-run"

    def run(self, fixture, dtype):
        raise SystemExit(0)


class OsExitInRun(Good):
    name = "os-exit-in-run"

    def run(self, fixture, dtype):
        os._exit(0)


class WrongAndExitsZeroAtExit(Good):
    """Computes a wrong loss, and leaves an `atexit` handler that exits with status 0."""

    name = "wrong-and-exits-zero-at-exit"

    def prepare(self, fixtures):
        atexit.register(os._exit, 0)

    def run(self, fixture, dtype):
        outputs = self.outputs(fixture, dtype)
        return {"m": {**outputs, "loss": outputs["loss"] * 2}}


class CopiesTheAnswer(Good):
    """Returns the fixture's expected outputs, if it can see them."""

    name = "copies-the-answer"

    def run(self, fixture, dtype):
        return {"m": fixture.get("expected")}


class EditsItsFixture(Good):
    """Computes right, then scribbles over the fixture it was given: the next dtype's run
    (and the runner's comparison) must not see it."""

    name = "edits-its-fixture"
    dtypes = ("float64", "float32")

    def run(self, fixture, dtype):
        runs = super().run(fixture, dtype)
        fixture["inputs"]["embeddings"][0][0] += 1.0
        fixture["inputs"]["labels"][0] += 1
        fixture.setdefault("expected", {})["loss"] = 0.0
        return runs


# -- a traceback that aborted the run -----------------------------------------------------------


class AvailableRaises(Good):
    name = "available-raises"

    def available(self):
        raise RuntimeError("the probe crashed")


AvailableBareBool = _with("AvailableBareBool", available=lambda self: True)


class SupportsRaises(Good):
    name = "supports-raises"

    def supports(self, fixture):
        raise ValueError("cannot tell")


class PrepareRaises(Good):
    name = "prepare-raises"

    def prepare(self, fixtures):
        raise RuntimeError("the compiler is missing")


ReturnsNone = _run("ReturnsNone", lambda self, f, d: None)
FlatDict = _run("FlatDict", lambda self, f, d: self.outputs(f, d))
TopLevelError = _run("TopLevelError", lambda self, f, d: {"error": "not implemented"})
LossAsList = _run("LossAsList", lambda self, f, d: {
    "m": {**self.outputs(f, d), "loss": [self.outputs(f, d)["loss"]]}})
UnknownDtype = _with("UnknownDtype", dtypes=("float64", "float128"))


class ConstructorRaises(Good):
    name = "constructor-raises"

    def __init__(self):
        raise OSError("no licence file")


class ConstructorNeedsArguments(Good):
    name = "constructor-needs-arguments"

    def __init__(self, path):
        self.path = path


# -- misreported ------------------------------------------------------------------------------


def _ragged(self, fixture, dtype):
    outputs = self.outputs(fixture, dtype)
    outputs["gradient"][1] = outputs["gradient"][1][:-1]
    return {"m": outputs}


RaggedGradient = _run("RaggedGradient", _ragged)
LossAsString = _run("LossAsString", lambda self, f, d: {
    "m": {**self.outputs(f, d), "loss": str(self.outputs(f, d)["loss"])}})
LossAsBool = _run("LossAsBool", lambda self, f, d: {"m": {**self.outputs(f, d), "loss": False}})
StrDtypes = _with("StrDtypes", dtypes="float64")


# -- hard to read -----------------------------------------------------------------------------


class Raises(Good):
    name = "raises"

    def run(self, fixture, dtype):
        return {"m": float(self.outputs(fixture, dtype)["loss"]) / 0}  # RAISES HERE


ReturnsError = _run("ReturnsError", lambda self, f, d: {"m": {"error": "out of memory"}})


def _without_gradient(self, fixture, dtype):
    outputs = self.outputs(fixture, dtype)
    del outputs["gradient"]
    return {"m": outputs}


NoGradient = _run("NoGradient", _without_gradient)


def _gradient_changed(row, column, value):
    def run(self, fixture, dtype):
        outputs = self.outputs(fixture, dtype)
        outputs["gradient"][row][column] = value(outputs["gradient"][row][column])
        return {"m": outputs}

    return run


InfiniteGradient = _run("InfiniteGradient", _gradient_changed(0, 1, lambda x: math.inf))
WrongGradient = _run("WrongGradient", _gradient_changed(1, 2, lambda x: x + 0.5))


class Hangs(Good):
    """Hangs in `run` until `RELEASE` is set (the test sets it when it is done)."""

    name = "hangs"
    RELEASE = threading.Event()

    def run(self, fixture, dtype):
        self.RELEASE.wait(60)
        return super().run(fixture, dtype)
