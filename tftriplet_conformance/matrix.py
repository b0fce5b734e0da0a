"""The runner's report as text: the matrix, the failures, what was not compared, the skips.

One row per fixture and one column per backend; each cell is the worst error / tolerance
over the dtypes and modes that backend ran (`cells.Cell.text`); the run's fresh cases
follow in a table of their own, headed by the run's seed. Below them: each failure with
its details (cases failing with the same details are listed together), each backend that
passed every fixture it ran but failed fresh cases, the backends that failed as a whole,
the reasons of the `n/a` cells, the outputs a backend did not report, the backends
skipped, and a summary line for the fixtures and one for the fresh cases.
"""

from __future__ import annotations

from tftriplet_conformance.cells import DIFFERS, ERRORS, NA, XFAIL, summary
from tftriplet_conformance.fresh_rules import lookups

#: Details shown per failure, and fixture names per group of identical failures.
_DETAILS, _NAMES = 8, 6
_HEADING = "worst error / tolerance per fixture and backend (over dtypes and modes; <= 1 passes)"


def format_report(fixtures, outcome, verbose=False):
    """The text report of a `runner.Outcome` over `fixtures` (and its fresh cases)."""
    matrix, fresh = outcome.matrix, outcome.fresh_matrix
    lines = [_HEADING, *_table(fixtures, matrix)] if matrix else []
    if fresh:
        title = f"fresh case (seed {outcome.fresh.seed})"
        lines += ["", *_table(outcome.fresh.fixtures, fresh, title)]
    problems = _problems(matrix, verbose) + _problems(fresh, verbose, "fresh cases")
    problems += _lookups(outcome)
    problems += [f"  {backend}: FAILED: {reason}" for backend, reason in outcome.broken.items()]
    if problems:
        lines += [""] if lines else []
        lines.append("failures:" if outcome.failed or not verbose else "details:")
        lines.extend(problems)
    for backend in matrix:
        for cells, noun in ((matrix[backend], "fixtures"), (fresh.get(backend, {}), "fresh cases")):
            lines.extend(_not_applicable(backend, cells, noun))
            lines.extend(_not_compared(backend, cells, noun))
    for backend, reason in outcome.skipped.items():
        lines.append(f"skipped backend {backend}: {reason}")
    counts = summary(cell for cells in matrix.values() for cell in cells.values())
    if outcome.broken:
        counts += ("; " if counts else "") + f"{len(outcome.broken)} backend(s) FAILED"
    lines.append(f"{len(fixtures)} fixtures x {len(matrix)} backends: {counts or 'nothing ran'}")
    lines.extend(_fresh_summary(outcome))
    return "\n".join(lines)


def _fresh_summary(outcome):
    """The fresh cases' summary line: their counts and how to draw them again, or why
    there are none."""
    fresh = outcome.fresh
    if fresh is None:
        return []
    if fresh.opted_out is not None:
        return [f"no fresh cases ({fresh.opted_out}): nothing checked that the results on "
                "the fixtures were computed, not looked up"]
    cells = [cell for cells in outcome.fresh_matrix.values() for cell in cells.values()]
    return [
        f"{len(fresh.fixtures)} fresh cases x {len(outcome.fresh_matrix)} backends: "
        f"{summary(cells) or 'nothing ran'} (seed {fresh.seed}: --fresh-seed {fresh.seed} "
        "draws them again)"
    ]


def _lookups(outcome):
    """A line per backend that passed every fixture it ran but failed fresh cases."""
    lines = []
    for backend, cells in outcome.fresh_matrix.items():
        names = lookups(outcome.matrix[backend], cells)
        if names:
            lines.append(
                f"  {backend}: passes every fixture it ran, but fails {len(names)} of its "
                f"{sum(c.status != NA for c in cells.values())} fresh cases (seed "
                f"{outcome.fresh.seed}): {', '.join(names)}. Its results on the fixtures do not "
                "hold on new inputs of the same losses: they were looked up, or a bug the "
                "fixtures miss shows there"
            )
    return lines


def _table(fixtures, matrix, title="fixture"):
    backends = list(matrix)
    names = [f["name"] for f in fixtures]
    width = max([len(title)] + [len(n) for n in names])
    cols = [max(10, len(b)) for b in backends]
    header = "  ".join(b.ljust(c) for b, c in zip(backends, cols, strict=True))
    lines = [title.ljust(width) + "  " + header]
    for name in names:
        cells = [matrix[b][name].text().ljust(c) for b, c in zip(backends, cols, strict=True)]
        lines.append(name.ljust(width) + "  " + "  ".join(cells).rstrip())
    return lines


def _problems(matrix, verbose, noun="fixtures"):
    """Failure lines; `noun` (fixtures, fresh cases) of one backend failing with the same
    details go together."""
    lines = []
    for backend, cells in matrix.items():
        groups = {}
        for name, cell in cells.items():
            if cell.status in ERRORS or (verbose and cell.status in (XFAIL, DIFFERS)):
                groups.setdefault((cell.status, tuple(cell.details)), []).append(name)
        for (status, details), names in groups.items():
            shown = ", ".join(names[:_NAMES])
            if len(names) > _NAMES:
                shown += f" and {len(names) - _NAMES} more {noun}"
            lines.append(f"  {backend} / {shown}: {status}")
            lines.extend(f"      {d}" for d in details[:_DETAILS])
            if len(details) > _DETAILS:
                lines.append(f"      ... and {len(details) - _DETAILS} more")
    return lines


def _not_applicable(backend, cells, noun="fixtures"):
    reasons = {}
    for cell in cells.values():
        if cell.status == NA:
            reason = "; ".join(cell.details)
            reasons[reason] = reasons.get(reason, 0) + 1
    return [f"n/a {backend} ({count} {noun}): {reason}" for reason, count in reasons.items()]


def _not_compared(backend, cells, noun="fixtures"):
    """Outputs the backend did not report (`not_reported`, or no gradient when it is not
    differentiable), with how many fixtures each concerns."""
    counts = {}
    for cell in cells.values():
        for key in cell.not_compared:
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        return []
    listed = ", ".join(f"{k} ({n} {noun})" for k, n in sorted(counts.items()))
    return [f"not compared for {backend} (not reported): {listed}"]

