"""What an implementation owes the fresh cases (`tftriplet_conformance.fresh`).

A fresh case is judged as a fixture is (`cells.judge`), and two more rules keep an
implementation from stepping around it:

- **Support follows the loss.** An implementation that ran a fixture of a loss variant
  (strategy, distance, soft margin; an optional feature's too) must run that variant's
  fresh cases: `n/a` there is a failure, since whether a loss is implemented cannot depend
  on its inputs. Otherwise a lookup of the golden files would answer `n/a` to whatever it
  cannot find.
- **A declared difference is one the golden fixtures show.** A fresh case that `differs`
  as declared counts only when the same declaration applies to some golden fixture (one
  of this run's, or of the package's: `Difference.covers`); a difference that applies to
  fresh cases alone (a name pattern, a predicate that recognises the golden inputs) would
  exempt exactly the cases no file holds.
"""

from __future__ import annotations

import math
from functools import cache

from tftriplet_conformance.cells import DIFFERS, ERRORS, FAIL, NA, PASS, Cell
from tftriplet_conformance.fresh import describe_key, variant_key

#: Fixture names quoted per message.
_SHOWN = 3


def hold(cells, fresh_cells, fixtures, cases):
    """Apply the rules above to one adapter's `fresh_cells` (`{name: Cell}` of the fresh
    `cases`) given its `cells` on `fixtures`; the offending cells become `FAIL`."""
    ran = {}
    for fixture in fixtures:
        if cells[fixture["name"]].status != NA:
            ran.setdefault(variant_key(fixture), []).append(fixture["name"])
    for case in cases:
        cell = fresh_cells[case["name"]]
        key = variant_key(case)
        if cell.status == NA and key in ran:
            fresh_cells[case["name"]] = _unsupported(cell, key, ran[key])
        elif cell.status not in ERRORS:
            unshown = [m for m, s in cell.modes.items()
                       if s == DIFFERS and not _shown(cell.declared[m], m, fixtures)]
            if unshown:
                fresh_cells[case["name"]] = _fresh_only(cell, unshown)


def _unsupported(cell, key, names):
    examples = ", ".join(names[:_SHOWN]) + (" ..." if len(names) > _SHOWN else "")
    why = "; ".join(cell.details) or "no reason given"
    return Cell(FAIL, math.inf, [
        f"n/a ({why}), but the fixtures of the same loss ({describe_key(key)}: {examples}) "
        "ran: whether a loss is supported depends on the loss, not on its inputs, and a "
        "fresh case is that loss on inputs no file holds"
    ])


def _shown(difference, mode, fixtures):
    """Whether `difference` applies in `mode` to one of `fixtures` or of the package's
    (read only when none of `fixtures` shows it)."""
    return (any(_covers(difference, f, mode) for f in fixtures)
            or any(_covers(difference, f, mode) for f in _golden()))


def _covers(difference, fixture, mode):
    try:
        return bool(difference.covers(fixture, mode))
    except Exception:  # the adapter's predicate: its fault shows on its fixtures
        return False


@cache
def _golden():
    """The package's fixtures, the optional ones included (none if they cannot be read)."""
    from tftriplet_conformance.errors import UsageError
    from tftriplet_conformance.fixtures import load_fixtures

    try:
        return tuple(load_fixtures(with_optional=True))
    except UsageError:
        return ()


def _fresh_only(cell, modes):
    lines = [
        f"{mode}: differs as declared ({cell.declared[mode].reason}), but that declared "
        "difference applies to no golden fixture: on a fresh case a declared difference "
        "counts only where the fixtures show it too"
        for mode in modes
    ]
    return Cell(FAIL, math.inf, lines + cell.details, dict(cell.modes),
                declared=dict(cell.declared))


def lookups(cells, fresh_cells):
    """The fresh cases an adapter failed although it passed every fixture it ran (what a
    lookup of the golden files, or a bug the fixtures miss, looks like); `[]` otherwise."""
    statuses = {cell.status for cell in cells.values()}
    if PASS not in statuses or statuses & set(ERRORS):
        return []
    return [name for name, cell in fresh_cells.items() if cell.status in ERRORS]
