"""The runner's report as text: the matrix, the failures, what was not compared, the skips.

One row per fixture and one column per backend; each cell is the worst error / tolerance
over the dtypes and modes that backend ran (`cells.Cell.text`). Below it: each failure with
its details (fixtures failing with the same details are listed together) and the backends
that failed as a whole, the reasons of the `n/a` cells, the outputs a backend did not
report, the backends skipped, and a summary line.
"""

from __future__ import annotations

from tftriplet_conformance.cells import DIFFERS, ERRORS, NA, XFAIL, summary

#: Details shown per failure, and fixture names per group of identical failures.
_DETAILS, _NAMES = 8, 6


def format_report(fixtures, outcome, verbose=False):
    """The text report of a `runner.Outcome` over `fixtures`."""
    matrix = outcome.matrix
    lines = _table(fixtures, matrix) if matrix else []
    problems = _problems(matrix, verbose)
    problems += [f"  {backend}: FAILED: {reason}" for backend, reason in outcome.broken.items()]
    if problems:
        lines += [""] if lines else []
        lines.append("failures:" if outcome.failed or not verbose else "details:")
        lines.extend(problems)
    for backend in matrix:
        lines.extend(_not_applicable(backend, matrix[backend]))
        lines.extend(_not_compared(backend, matrix[backend]))
    for backend, reason in outcome.skipped.items():
        lines.append(f"skipped backend {backend}: {reason}")
    counts = summary(cell for cells in matrix.values() for cell in cells.values())
    if outcome.broken:
        counts += ("; " if counts else "") + f"{len(outcome.broken)} backend(s) FAILED"
    lines.append(f"{len(fixtures)} fixtures x {len(matrix)} backends: {counts or 'nothing ran'}")
    return "\n".join(lines)


def _table(fixtures, matrix):
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
    return lines


def _problems(matrix, verbose):
    """Failure lines; fixtures of one backend failing with the same details go together."""
    lines = []
    for backend, cells in matrix.items():
        groups = {}
        for name, cell in cells.items():
            if cell.status in ERRORS or (verbose and cell.status in (XFAIL, DIFFERS)):
                groups.setdefault((cell.status, tuple(cell.details)), []).append(name)
        for (status, details), names in groups.items():
            shown = ", ".join(names[:_NAMES])
            if len(names) > _NAMES:
                shown += f" and {len(names) - _NAMES} more fixtures"
            lines.append(f"  {backend} / {shown}: {status}")
            lines.extend(f"      {d}" for d in details[:_DETAILS])
            if len(details) > _DETAILS:
                lines.append(f"      ... and {len(details) - _DETAILS} more")
    return lines


def _not_applicable(backend, cells):
    reasons = {}
    for cell in cells.values():
        if cell.status == NA:
            reason = "; ".join(cell.details)
            reasons[reason] = reasons.get(reason, 0) + 1
    return [f"n/a {backend} ({count} fixtures): {reason}" for reason, count in reasons.items()]


def _not_compared(backend, cells):
    """Outputs the backend did not report (`not_reported`, or no gradient when it is not
    differentiable), with how many fixtures each concerns."""
    counts = {}
    for cell in cells.values():
        for key in cell.not_compared:
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        return []
    listed = ", ".join(f"{k} ({n} fixtures)" for k, n in sorted(counts.items()))
    return [f"not compared for {backend} (not reported): {listed}"]

