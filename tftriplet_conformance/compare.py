"""Compare one backend result with a fixture's expected outputs.

Every check gives a *ratio*: the error divided by what the tolerance allows, so 1 is the
limit and the worst ratio of a cell is one number, comparable across outputs and dtypes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tftriplet_conformance import optional
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

    def fail(self, message):
        """A failure that no tolerance could allow (missing, not finite, wrong shape)."""
        self.ratio = math.inf
        self.failures.append(message)

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
    """Check `outputs` (a dict like the fixture's `expected`) against the fixture.

    Every output of the fixture's variant must be present, except those named in
    `not_reported`: outputs the backend cannot produce (a peer library that returns the
    loss but not its counts). Those are listed in `not_compared`, not checked. The
    project's own backends pass nothing there: for them a missing output is a failure.
    """
    result = Comparison()
    if "error" in outputs:  # what went wrong, worded by the runner (validate.py)
        result.ratio = math.inf
        result.failures.append(str(outputs["error"]))
        return result
    if optional.feature_of(fixture) == "memory":
        return _compare_steps(fixture, outputs, backend, dtype, not_reported)
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
            result.fail(
                f"{key}: missing from the backend's outputs (list it in not_reported if the "
                "implementation cannot compute it; never the loss)"
            )
            continue
        actual, want = float(outputs[key]), float(expected[key])
        shown = f"{actual:g} vs {want:g}" if key in variant.counts else f"{actual!r} vs {want!r}"
        if not math.isfinite(actual):
            result.fail(f"{key} {shown}: not finite")
        elif key in variant.counts:
            result.add(f"{key} {shown}", abs(actual - want), tol["count_atol"])
        else:
            allowed = tol["atol"] + tol["rtol"] * abs(want)
            result.add(f"{key} {shown}", abs(actual - want), allowed)
    if "gradient" in outputs:
        _compare_gradient(result, outputs["gradient"], expected["gradient"], tol)
    _compare_printed(result, expected, outputs)
    return result


def _compare_steps(fixture, outputs, backend, dtype, not_reported):
    """Every step of a memory fixture compared as a core fixture, its failures named by
    step; the worst ratio over the steps."""
    result = Comparison()
    for index, step_outputs in enumerate(outputs["steps"]):
        one = compare(optional.step(fixture, index), step_outputs, backend, dtype, not_reported)
        result.ratio = max(result.ratio, one.ratio)
        result.failures += [f"step {index}: {failure}" for failure in one.failures]
        result.not_compared = sorted(set(result.not_compared) | set(one.not_compared))
    return result


def _compare_gradient(result, gradient, expected, tol):
    """Max abs error against `gradient_atol + rtol * max |expected|`, naming where the
    worst entry is and both values; a non-finite entry is named as such."""
    actual = np.asarray(gradient, dtype=np.float64)
    want = np.asarray(expected, dtype=np.float64)
    if actual.shape != want.shape:
        result.fail(f"gradient shape {actual.shape}, expected {want.shape}")
        return
    bad = np.argwhere(~np.isfinite(actual))
    if bad.size:
        i, j = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        result.fail(f"gradient[{i}][{j}] {float(actual[i, j])!r} vs {float(want[i, j])!r}: "
                    f"not finite{more}")
        return
    diff = np.abs(actual - want)
    i, j = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else (0, 0)
    error = float(diff[i, j]) if diff.size else 0.0
    allowed = tol["gradient_atol"] + tol["rtol"] * float(np.max(np.abs(want), initial=0.0))
    where = f" at [{i}][{j}]: {float(actual[i, j])!r} vs {float(want[i, j])!r}" if diff.size else ""
    result.add(f"gradient (max abs){where}", error, allowed)


def _compare_printed(result, expected, outputs):
    """The seed program's 6-digit line, compared as text (trailing blanks aside)."""
    if "printed" in expected and "printed" in outputs:
        if outputs["printed"].rstrip() != expected["printed"]:
            result.fail(f"printed {outputs['printed']!r} != {expected['printed']!r}")
