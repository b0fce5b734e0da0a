"""Run backends over fixtures and summarize: the matrix, the failures, the skips."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from tftriplet_conformance.adapters import all_adapters
from tftriplet_conformance.compare import compare
from tftriplet_conformance.differs import declared_difference
from tftriplet_conformance.expected_failures import expected_failure

PASS, FAIL, XFAIL, XPASS, SKIP, NA = "ok", "FAIL", "xfail", "XPASS", "skip", "n/a"
#: A declared semantic difference of a peer that differs (fine), or that matches (an error).
DIFFERS, MATCHES = "differs", "MATCHES"
#: The statuses that make the runner exit 1.
ERRORS = (FAIL, XPASS, MATCHES)


@dataclass
class Cell:
    """One (fixture, backend): the worst ratio over its dtypes and modes, and why it failed.

    ``modes`` maps each mode (a peer's configuration) to its status, worst over dtypes.
    A cell whose modes all differ as declared is ``differs``; one where some modes pass
    and the others differ as declared is ``ok`` (its ratio over the passing ones), and
    ``differs`` lists the latter.
    """

    status: str = PASS
    ratio: float = 0.0
    details: list = field(default_factory=list)
    modes: dict = field(default_factory=dict)
    not_compared: list = field(default_factory=list)
    #: ``{mode: Difference}`` for the modes a declared difference applies to.
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


_RANK = {PASS: 0, NA: 0, SKIP: 0, DIFFERS: 0, XFAIL: 1, FAIL: 2, XPASS: 2, MATCHES: 2}
#: Within one mode, over dtypes: a declared difference outranks a pass.
_MODE_RANK = {**_RANK, DIFFERS: 0.5}


def check_run(fixture, adapter, dtype, mode, outputs, entries=None):
    """``(status, ratio, details)`` of one run, expected failures and differences applied."""
    return _check(fixture, adapter, dtype, mode, outputs, entries)[:3]


def _check(fixture, adapter, dtype, mode, outputs, entries=None):
    printed_only = set(outputs) == {"printed"}
    if adapter.differentiable and not printed_only and not {"gradient", "error"} & set(outputs):
        outputs = {**outputs, "error": "a differentiable backend returned no gradient"}
    not_reported = tuple(getattr(adapter, "not_reported", ()))
    comparison = compare(fixture, outputs, adapter.name, dtype, not_reported)
    entry = expected_failure(adapter.name, fixture["name"], dtype, mode, entries)
    # a declared difference is about the peer's numbers: an error is never one
    difference = None if "error" in outputs else declared_difference(adapter, fixture, mode)
    where = f"{dtype}/{mode}"
    if entry is None and difference is not None:
        if comparison.passed:
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
    return status, comparison.ratio, details, comparison.not_compared, difference


def _combine(cell):
    """The cell's status from its modes' (see :class:`Cell`)."""
    statuses = set(cell.modes.values())
    worst = max(statuses, key=_RANK.get, default=PASS)
    if _RANK[worst] > 0:
        return worst
    if statuses == {DIFFERS}:
        return DIFFERS
    return PASS


def run_backend(adapter, fixtures, entries=None, progress=None):
    """``{fixture name: Cell}`` for one available adapter.

    ``progress(done, total, fixture_name)``, if given, is called with ``fixture_name``
    ``None`` before ``prepare``, then before each fixture.
    """
    supported = [f for f in fixtures if adapter.supports(f)[0]]
    cells = {f["name"]: Cell(status=NA, details=[adapter.supports(f)[1]]) for f in fixtures}
    if progress is not None:
        progress(0, len(supported), None)
    try:
        adapter.prepare(supported)
    except Exception as err:
        for f in supported:
            cells[f["name"]] = Cell(FAIL, math.inf, [f"prepare failed: {err}"])
        return cells
    for index, fixture in enumerate(supported):
        if progress is not None:
            progress(index, len(supported), fixture["name"])
        cell, missing = Cell(), {}
        for dtype in adapter.dtypes:
            try:
                runs = adapter.run(fixture, dtype)
            except Exception as err:
                runs = {"run": {"error": f"{type(err).__name__}: {err}"}}
            for mode, outputs in runs.items():
                status, ratio, details, not_compared, difference = _check(
                    fixture, adapter, dtype, mode, outputs, entries
                )
                if difference is not None:
                    cell.declared[mode] = difference
                previous = cell.modes.get(mode, PASS)
                cell.modes[mode] = max(previous, status, key=_MODE_RANK.get)
                if status in (PASS, FAIL, MATCHES):
                    cell.ratio = max(cell.ratio, ratio)
                cell.details.extend(details)
                missing[mode] = missing.get(mode, set()) | set(not_compared)
        # an output is not compared when no mode (configuration) of the backend reported it
        cell.not_compared = sorted(set.intersection(*missing.values())) if missing else []
        cell.status = _combine(cell)
        cells[fixture["name"]] = cell
    if progress is not None:
        progress(len(supported), len(supported), "")
    return cells


def run(fixtures, backends=None, adapters=None, entries=None, log=None):
    """Run the selected backends. Returns ``(matrix, skipped)``.

    ``matrix`` is ``{backend: {fixture: Cell}}`` for the backends that ran, ``skipped`` is
    ``{backend: reason}`` for the selected ones that are not available here. ``log``, if
    given, receives progress lines (which backend and fixture it is on, and timings).
    """
    adapters = adapters if adapters is not None else all_adapters()
    if backends:
        unknown = set(backends) - {a.name for a in adapters}
        if unknown:
            raise ValueError(
                f"unknown backend(s) {sorted(unknown)}; known: {[a.name for a in adapters]}"
            )
        adapters = [a for a in adapters if a.name in backends]
    matrix, skipped = {}, {}
    for number, adapter in enumerate(adapters, 1):
        where = f"[{number}/{len(adapters)}] {adapter.name}"
        ok, reason = adapter.available()
        if not ok:
            skipped[adapter.name] = reason
            if log is not None:
                log(f"{where}: not available: {reason}")
            continue
        progress = None
        if log is not None:

            def progress(done, total, name, where=where):
                if name is None:
                    log(f"{where}: preparing {total} fixtures ({len(fixtures) - total} n/a)")
                elif name:
                    log(f"{where}: fixture {done + 1}/{total} {name}")

        start = time.perf_counter()
        matrix[adapter.name] = cells = run_backend(adapter, fixtures, entries, progress)
        if log is not None:
            log(f"{where}: {_summary(cells.values())} in {time.perf_counter() - start:.1f} s")
    return matrix, skipped


def _summary(cells):
    counts = {}
    for cell in cells:
        counts[cell.status] = counts.get(cell.status, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))


def failed(matrix):
    return any(c.status in ERRORS for cells in matrix.values() for c in cells.values())


def format_report(fixtures, matrix, skipped, verbose=False):
    """The matrix (fixture x backend, worst error / tolerance), the failures, the skips."""
    backends = list(matrix)
    names = [f["name"] for f in fixtures]
    width = max([len("fixture")] + [len(n) for n in names])
    cols = [max(10, len(b)) for b in backends]
    header = "  ".join(b.ljust(c) for b, c in zip(backends, cols, strict=True))
    lines = [
        "worst error / tolerance per fixture and backend (over dtypes and modes; <= 1 passes)",
        "fixture".ljust(width) + "  " + header,
    ]
    for name in names:
        cells = [matrix[b][name].text().ljust(c) for b, c in zip(backends, cols, strict=True)]
        lines.append(name.ljust(width) + "  " + "  ".join(cells).rstrip())
    problems = [
        (b, n, c)
        for b in backends
        for n, c in matrix[b].items()
        if c.status in ERRORS or (verbose and c.status in (XFAIL, DIFFERS))
    ]
    if problems:
        lines.append("")
        lines.append("failures:" if failed(matrix) or not verbose else "details:")
        for backend, name, cell in problems:
            lines.append(f"  {backend} / {name}: {cell.status}")
            lines.extend(f"      {d}" for d in cell.details[:8])
            if len(cell.details) > 8:
                lines.append(f"      ... and {len(cell.details) - 8} more")
    for backend in backends:
        reasons = {}
        for cell in matrix[backend].values():
            if cell.status == NA:
                reason = "; ".join(cell.details)
                reasons[reason] = reasons.get(reason, 0) + 1
        for reason, count in reasons.items():
            lines.append(f"n/a {backend} ({count} fixtures): {reason}")
    for backend, reason in skipped.items():
        lines.append(f"skipped backend {backend}: {reason}")
    summary = _summary(cell for cells in matrix.values() for cell in cells.values())
    lines.append(f"{len(fixtures)} fixtures x {len(backends)} backends: {summary}")
    return "\n".join(lines)
