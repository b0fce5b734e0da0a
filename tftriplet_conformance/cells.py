"""Statuses, the matrix's cells, and the verdict on one run of one mode.

A run of one (fixture, backend, dtype, mode) is `judge`d into a `Check`: compared with the
fixture (`compare`), then declared expected failures (`expected_failures`) and declared
differences (`differs`) are applied. A `Cell` (one fixture, one backend) combines the
checks of every dtype and mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tftriplet_conformance.compare import compare
from tftriplet_conformance.differs import declared_difference
from tftriplet_conformance.expected_failures import expected_failure
from tftriplet_conformance.fresh import is_fresh
from tftriplet_conformance.validate import check_declarations, check_outputs, read_declarations

PASS, FAIL, XFAIL, XPASS, SKIP, NA = "ok", "FAIL", "xfail", "XPASS", "skip", "n/a"
#: A declared semantic difference of a peer that differs (fine), or that matches (an error).
DIFFERS, MATCHES = "differs", "MATCHES"
#: The statuses that make the runner exit 1.
ERRORS = (FAIL, XPASS, MATCHES)

_RANK = {PASS: 0, NA: 0, SKIP: 0, DIFFERS: 0, XFAIL: 1, FAIL: 2, XPASS: 2, MATCHES: 2}
#: Within one mode, over dtypes: a declared difference outranks a pass.
_MODE_RANK = {**_RANK, DIFFERS: 0.5}


@dataclass(frozen=True)
class Check:
    """The verdict on one run of one mode.

    Attributes:
        status: `ok`, `FAIL`, `xfail`, `XPASS`, `differs` or `MATCHES`.
        ratio: the worst error / tolerance (`inf` for a failure no tolerance allows).
        details: one line per problem, each starting with `dtype/mode:`.
        not_compared: outputs the backend does not report (not compared).
        difference: the declared difference that applied, or `None`.
    """

    status: str
    ratio: float
    details: list
    not_compared: list = field(default_factory=list)
    difference: object = None


@dataclass
class Cell:
    """One (fixture, backend): the worst ratio over its dtypes and modes, and why it failed.

    `modes` maps each mode (a peer's configuration) to its status, worst over dtypes.
    A cell whose modes all differ as declared is `differs`; one where some modes pass
    and the others differ as declared is `ok` (its ratio over the passing ones), and
    `differs` lists the latter.
    """

    status: str = PASS
    ratio: float = 0.0
    details: list = field(default_factory=list)
    modes: dict = field(default_factory=dict)
    not_compared: list = field(default_factory=list)
    #: `{mode: Difference}` for the modes a declared difference applies to.
    declared: dict = field(default_factory=dict)

    @property
    def differs(self):
        return [m for m, s in self.modes.items() if s == DIFFERS]

    def text(self):
        if self.status in (SKIP, NA, XFAIL, XPASS, DIFFERS, MATCHES):
            return self.status
        ratio = "inf" if math.isinf(self.ratio) else f"{self.ratio:.2g}"
        suffix = " +differs" if self.status == PASS and self.differs else ""
        return f"{self.status} {ratio}{suffix}"

    def add(self, mode, check):
        """Fold in the `Check` of one dtype's run of `mode`."""
        if check.difference is not None:
            self.declared[mode] = check.difference
        previous = self.modes.get(mode, PASS)
        self.modes[mode] = max(previous, check.status, key=_MODE_RANK.get)
        if check.status in (PASS, FAIL, MATCHES):
            self.ratio = max(self.ratio, check.ratio)
        self.details.extend(check.details)

    def finish(self):
        """The cell's status from its modes' (see the class)."""
        statuses = set(self.modes.values())
        worst = max(statuses, key=_RANK.get, default=PASS)
        if _RANK[worst] > 0:
            self.status = worst
        elif statuses == {DIFFERS}:
            self.status = DIFFERS
        else:
            self.status = PASS


def judge(fixture, declared, dtype, mode, outputs, entries=None):
    """The `Check` of checked `outputs` (`validate.check_outputs`) of one run.

    `declared` is the adapter's `validate.Declarations`; `entries` replaces the declared
    expected failures (tests).
    """
    comparison = compare(fixture, outputs, declared.name, dtype, declared.not_reported)
    not_compared = list(comparison.not_compared)
    if not declared.differentiable and "gradient" not in outputs and "error" not in outputs:
        not_compared.append("gradient")
    entry = expected_failure(declared.name, fixture["name"], dtype, mode, entries)
    # a declared difference is about the peer's numbers: an error is never one
    difference = None if "error" in outputs else declared_difference(declared, fixture, mode)
    where = f"{dtype}/{mode}"
    if entry is None and difference is not None:
        if comparison.passed and is_fresh(fixture["name"]):
            # random inputs on which the two quantities coincide: the fixtures, chosen to
            # show the difference, judge the declaration
            status, details = PASS, []
        elif comparison.passed:
            status = MATCHES
            details = [f"{where}: matches, but declared to differ ({difference.reason})"]
        else:
            status = DIFFERS
            details = [f"{where}: differs ({difference.reason}): {comparison.failures[0]}"]
    elif entry is None:
        status = PASS if comparison.passed else FAIL
        details = [f"{where}: {f}" for f in comparison.failures]
    elif comparison.passed:
        status = XPASS
        details = [f"{where}: passed, but declared an expected failure ({entry.reason})"]
    else:
        status = XFAIL
        details = [f"{where}: expected failure ({entry.reason}): {comparison.failures[0]}"]
    return Check(status, comparison.ratio, details, not_compared, difference)


def check_run(fixture, adapter, dtype, mode, outputs, entries=None):
    """The `Check` of one run's `outputs` (a mode's dict) by `adapter`, checked as the
    runner checks them."""
    declared, problem = check_declarations(read_declarations(adapter))
    if problem:
        raise ValueError(problem)
    outputs = check_outputs(outputs, fixture, declared, "run()")
    return judge(fixture, declared, dtype, mode, outputs, entries)


def failed(matrix):
    """Whether some cell of `{backend: {fixture: Cell}}` is an error."""
    return any(c.status in ERRORS for cells in matrix.values() for c in cells.values())


def summary(cells):
    """`"3 FAIL, 40 ok"`: how many cells have each status."""
    counts = {}
    for cell in cells:
        counts[cell.status] = counts.get(cell.status, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
