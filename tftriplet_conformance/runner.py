"""Run backends over fixtures and summarize: the matrix, the failures, the skips."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tftriplet_conformance.adapters import all_adapters
from tftriplet_conformance.compare import compare
from tftriplet_conformance.expected_failures import expected_failure

PASS, FAIL, XFAIL, XPASS, SKIP, NA = "ok", "FAIL", "xfail", "XPASS", "skip", "n/a"


@dataclass
class Cell:
    """One (fixture, backend): the worst ratio over its dtypes and modes, and why it failed."""

    status: str = PASS
    ratio: float = 0.0
    details: list = field(default_factory=list)

    def text(self):
        if self.status in (SKIP, NA, XFAIL, XPASS):
            return self.status
        ratio = "inf" if math.isinf(self.ratio) else f"{self.ratio:.2g}"
        return f"{self.status} {ratio}"


_RANK = {PASS: 0, NA: 0, SKIP: 0, XFAIL: 1, FAIL: 2, XPASS: 2}


def check_run(fixture, adapter, dtype, mode, outputs, entries=None):
    """``(status, ratio, details)`` of one run, expected failures applied."""
    printed_only = set(outputs) == {"printed"}
    if adapter.differentiable and not printed_only and not {"gradient", "error"} & set(outputs):
        outputs = {**outputs, "error": "a differentiable backend returned no gradient"}
    comparison = compare(fixture, outputs, adapter.name, dtype)
    entry = expected_failure(adapter.name, fixture["name"], dtype, mode, entries)
    where = f"{dtype}/{mode}"
    if entry is None:
        status = PASS if comparison.passed else FAIL
        details = [f"{where}: {f}" for f in comparison.failures]
    elif comparison.passed:
        status = XPASS
        details = [f"{where}: passed, but declared an expected failure ({entry.reason})"]
    else:
        status = XFAIL
        details = [f"{where}: expected failure ({entry.reason}): {comparison.failures[0]}"]
    return status, comparison.ratio, details


def run_backend(adapter, fixtures, entries=None):
    """``{fixture name: Cell}`` for one available adapter."""
    supported = [f for f in fixtures if adapter.supports(f)[0]]
    cells = {f["name"]: Cell(status=NA, details=[adapter.supports(f)[1]]) for f in fixtures}
    try:
        adapter.prepare(supported)
    except Exception as err:
        for f in supported:
            cells[f["name"]] = Cell(FAIL, math.inf, [f"prepare failed: {err}"])
        return cells
    for fixture in supported:
        cell = Cell()
        for dtype in adapter.dtypes:
            try:
                runs = adapter.run(fixture, dtype)
            except Exception as err:
                runs = {"run": {"error": f"{type(err).__name__}: {err}"}}
            for mode, outputs in runs.items():
                status, ratio, details = check_run(fixture, adapter, dtype, mode, outputs, entries)
                if _RANK[status] > _RANK[cell.status]:
                    cell.status = status
                if status != XFAIL:
                    cell.ratio = max(cell.ratio, ratio)
                cell.details.extend(details)
        cells[fixture["name"]] = cell
    return cells


def run(fixtures, backends=None, adapters=None, entries=None):
    """Run the selected backends. Returns ``(matrix, skipped)``.

    ``matrix`` is ``{backend: {fixture: Cell}}`` for the backends that ran, ``skipped`` is
    ``{backend: reason}`` for the selected ones that are not available here.
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
    for adapter in adapters:
        ok, reason = adapter.available()
        if not ok:
            skipped[adapter.name] = reason
            continue
        matrix[adapter.name] = run_backend(adapter, fixtures, entries)
    return matrix, skipped


def failed(matrix):
    return any(c.status in (FAIL, XPASS) for cells in matrix.values() for c in cells.values())


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
        if c.status in (FAIL, XPASS) or (verbose and c.status == XFAIL)
    ]
    if problems:
        lines.append("")
        lines.append("failures:")
        for backend, name, cell in problems:
            lines.append(f"  {backend} / {name}: {cell.status}")
            lines.extend(f"      {d}" for d in cell.details[:8])
            if len(cell.details) > 8:
                lines.append(f"      ... and {len(cell.details) - 8} more")
    for backend, reason in skipped.items():
        lines.append(f"skipped backend {backend}: {reason}")
    counts = {}
    for cells in matrix.values():
        for cell in cells.values():
            counts[cell.status] = counts.get(cell.status, 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    lines.append(f"{len(fixtures)} fixtures x {len(backends)} backends: {summary}")
    return "\n".join(lines)
