"""Compare one backend result with a fixture's expected outputs.

Every check gives a *ratio*: the error divided by what the tolerance allows, so 1 is the
limit and the worst ratio of a cell is one number, comparable across outputs and dtypes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tftriplet_conformance.tolerances import effective
from tftriplet_conformance.variants import variant_of


@dataclass
class Comparison:
    """The outcome of one (fixture, backend, dtype, mode) run."""

    ratio: float = 0.0
    failures: list = field(default_factory=list)
    not_compared: list = field(default_factory=list)

    @property
    def passed(self):
        return not self.failures

    def add(self, what, error, allowed):
        if math.isnan(error):
            ratio = math.inf
        elif allowed > 0:
            ratio = error / allowed
        else:
            ratio = 0.0 if error == 0 else math.inf
        self.ratio = max(ratio, self.ratio)
        if not ratio <= 1.0:
            self.failures.append(f"{what}: error {error:.3g} > allowed {allowed:.3g}")


def compare(fixture, outputs, backend, dtype, not_reported=()):
    """Check ``outputs`` (a dict like the fixture's ``expected``) against the fixture.

    Every output of the fixture's variant must be present, except those named in
    ``not_reported``: outputs the backend cannot produce (a peer library that returns the
    loss but not its counts). Those are listed in ``not_compared``, not checked. The
    project's own backends pass nothing there: for them a missing output is a failure.
    """
    result = Comparison()
    if "error" in outputs:
        result.ratio = math.inf
        result.failures.append(f"raised: {outputs['error']}")
        return result
    tol = effective(fixture, backend, dtype)
    expected = fixture["expected"]
    if set(outputs) == {"printed"}:  # a program that only prints the seed's line
        _compare_printed(result, expected, outputs)
        return result
    variant = variant_of(fixture)
    for key in variant.outputs:
        if key not in outputs and key in not_reported:
            result.not_compared.append(key)
            continue
        if key not in outputs:
            result.failures.append(f"{key}: missing from the backend's outputs")
            result.ratio = math.inf
            continue
        actual, want = float(outputs[key]), float(expected[key])
        error = abs(actual - want) if math.isfinite(actual) else math.nan
        if key in variant.counts:
            result.add(f"{key} {actual:g} vs {want:g}", error, tol["count_atol"])
        else:
            allowed = tol["atol"] + tol["rtol"] * abs(want)
            result.add(f"{key} {actual!r} vs {want!r}", error, allowed)
    if "gradient" in outputs:
        actual = np.asarray(outputs["gradient"], dtype=np.float64)
        want = np.asarray(expected["gradient"], dtype=np.float64)
        if actual.shape != want.shape:
            result.failures.append(f"gradient shape {actual.shape}, expected {want.shape}")
            result.ratio = math.inf
        else:
            diff = np.abs(actual - want)
            error = float(np.max(diff)) if np.all(np.isfinite(actual)) else math.nan
            allowed = tol["gradient_atol"] + tol["rtol"] * float(np.max(np.abs(want)))
            result.add("gradient (max abs)", error, allowed)
    _compare_printed(result, expected, outputs)
    return result


def _compare_printed(result, expected, outputs):
    """The seed program's 6-digit line, compared as text (trailing blanks aside)."""
    if "printed" in expected and "printed" in outputs:
        if outputs["printed"].rstrip() != expected["printed"]:
            result.failures.append(f"printed {outputs['printed']!r} != {expected['printed']!r}")
            result.ratio = math.inf
