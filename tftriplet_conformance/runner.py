"""Run backends over fixtures: every call guarded, every return checked, nothing trusted.

A run passes only when every adapter it was asked for by name (or every one, with
`required`) was available, and was compared on at least one fixture; each comparison
covers every output the contract requires (`compare`). Beside the fixtures, every adapter
runs the run's fresh cases (`fresh`: drawn at run time, in no file), under the same
checks and two more rules (`fresh_rules`), so that looking the golden files up fails. An
adapter's fault, wherever it happens, is that adapter's failure (`guard`, `validate`),
and the run goes on with the others. Adapters get a copy of each fixture without its
expected outputs; the runner compares against its own.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

from tftriplet_conformance import fresh_rules, optional
from tftriplet_conformance.adapters import BrokenAdapter, Unsupported, all_adapters
from tftriplet_conformance.cells import (
    DIFFERS,
    ERRORS,
    FAIL,
    MATCHES,
    NA,
    PASS,
    SKIP,
    XFAIL,
    XPASS,
    Cell,
    Check,
    check_run,
    failed,
    judge,
    summary,
)
from tftriplet_conformance.errors import AdapterFault, UsageError
from tftriplet_conformance.fresh import PREFIX, draw, is_fresh
from tftriplet_conformance.guard import DEFAULT_TIMEOUT, Guard, defined_at
from tftriplet_conformance.matrix import format_report
from tftriplet_conformance.validate import (
    check_declarations,
    check_pair,
    check_runs,
    read_declarations,
)

__all__ = [
    "DIFFERS",
    "ERRORS",
    "FAIL",
    "MATCHES",
    "NA",
    "PASS",
    "SKIP",
    "XFAIL",
    "XPASS",
    "Cell",
    "Check",
    "Outcome",
    "check_run",
    "failed",
    "format_report",
    "run",
    "run_backend",
    "select",
]


@dataclass
class Outcome:
    """What a run found.

    Attributes:
        matrix: `{backend: {fixture name: Cell}}` for the backends that ran.
        skipped: `{backend: reason}`, backends not available here (not a failure).
        broken: `{backend: reason}`, backend-level failures: it could not be loaded,
            its attributes or `available()` are wrong, it was required but is not
            available, or it was compared on no fixture.
        fresh: the run's fresh cases (`fresh.Fresh`), or `None`.
        fresh_matrix: `{backend: {fresh case name: Cell}}`, apart from the fixtures'.
    """

    matrix: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    broken: dict = field(default_factory=dict)
    fresh: object = None
    fresh_matrix: dict = field(default_factory=dict)

    @property
    def failed(self):
        return bool(self.broken) or failed(self.matrix) or failed(self.fresh_matrix)


def for_adapter(fixture):
    """The copy of a fixture an adapter gets: everything but its expected outputs."""
    return copy.deepcopy({k: v for k, v in fixture.items() if k != "expected"})


def method(name, *args):
    """`adapter -> adapter.name(*args)`, for `Guard.call`."""
    return lambda adapter: getattr(adapter, name)(*args)


def run_backend(adapter, fixtures, entries=None, progress=None, guard=None):
    """`{fixture name: Cell}` for one available adapter.

    Raises `AdapterFault` when its attributes are wrong (then nothing can be compared).
    `progress(done, total, fixture_name)`, if given, is called with `fixture_name` `None`
    before `prepare`, then before each fixture. `guard`: the adapter's `Guard`, closed by
    its owner; without one, a guard of `DEFAULT_TIMEOUT` is made and closed here.
    """
    own = guard is None
    guard = Guard(adapter, DEFAULT_TIMEOUT) if own else guard
    try:
        declared = _declarations(guard)
        cells, supported = _supports(guard, fixtures, declared)
        if progress is not None:
            progress(0, len(supported), None)
        limit = guard.timeout * max(1, len(supported))
        copies = [for_adapter(f) for f in supported]
        _, fault = guard.call(method("prepare", copies), "prepare(fixtures)", limit)
        place = defined_at(guard.adapter, "run")
        where = f"run() at {place}" if place else "run()"
        for index, fixture in enumerate(supported):
            if progress is not None:
                progress(index, len(supported), fixture["name"])
            if fault is not None:
                cells[fixture["name"]] = Cell(FAIL, math.inf, [fault.message])
                continue
            cells[fixture["name"]] = _run_fixture(guard, declared, fixture, where, entries)
    finally:
        if own:
            guard.close()
    _hold_to_claims(cells, fixtures, declared)
    if progress is not None:
        progress(len(supported), len(supported), "")
    return cells


def _declarations(guard):
    raw, fault = guard.call(read_declarations, "reading its attributes")
    if fault is not None:
        raise AdapterFault(fault.message)
    declared, problem = check_declarations(raw)
    if problem:
        raise AdapterFault(problem)
    return declared


def _supports(guard, fixtures, declared):
    """Cells (`n/a`, or `FAIL` where `supports` misbehaved) and the supported fixtures.
    A fixture of an optional feature the adapter does not claim is `n/a` without asking."""
    cells, supported = {}, []
    for fixture in fixtures:
        feature = optional.feature_of(fixture)
        if feature is not None and feature not in declared.features:
            cells[fixture["name"]] = Cell(status=NA, details=[
                f"the optional feature {feature!r} is not claimed (features="
                f"{list(declared.features)})"
            ])
            continue
        what = f"supports(fixture {fixture['name']!r})"
        value, fault = guard.call(method("supports", for_adapter(fixture)), what)
        pair, problem = (None, fault.message) if fault else check_pair(value, what)
        if problem:
            cells[fixture["name"]] = Cell(FAIL, math.inf, [problem])
        elif pair[0]:
            supported.append(fixture)
        else:
            cells[fixture["name"]] = Cell(status=NA, details=[pair[1]])
    return cells, supported


def _hold_to_claims(cells, fixtures, declared):
    """An adapter that claims an optional feature but ran none of its fixtures (each one
    `n/a`) fails them all: a claim is kept, never skipped silently. (Its fresh cases are
    held to the fixtures by `fresh_rules`.)"""
    for feature in declared.features:
        names = [f["name"] for f in fixtures
                 if optional.feature_of(f) == feature and not is_fresh(f["name"])]
        if names and all(cells[name].status == NA for name in names):
            reasons = sorted({d for name in names for d in cells[name].details})
            for name in names:
                cells[name] = Cell(FAIL, math.inf, [
                    f"claims the optional feature {feature!r} (features="
                    f"{list(declared.features)}) but ran none of its {len(names)} fixtures: "
                    + "; ".join(reasons)
                ])


def _run_fixture(guard, declared, fixture, where, entries):
    """One fixture's Cell over the adapter's dtypes and modes; `where` names `run()` (and
    where it is defined) in messages."""
    cell, missing, unsupported = Cell(), {}, {}
    for dtype in declared.dtypes:
        what = f"run(fixture {fixture['name']!r}, {dtype!r})"
        value, fault = guard.call(method("run", for_adapter(fixture), dtype), what)
        if fault is not None and isinstance(fault.error, Unsupported):
            unsupported[dtype] = str(fault.error)
            continue
        for mode, check in _checks(value, fault, fixture, declared, dtype, where, entries):
            cell.add(mode, check)
            missing[mode] = missing.get(mode, set()) | set(check.not_compared)
    if unsupported:
        return _unsupported(cell, unsupported, declared)
    # an output is not compared when no mode (configuration) of the backend reported it
    cell.not_compared = sorted(set.intersection(*missing.values())) if missing else []
    cell.finish()
    return cell


def _checks(value, fault, fixture, declared, dtype, where, entries):
    """`(mode, Check)` for what one `run` call gave: a fault, or its checked return."""
    runs = None
    try:
        runs = check_runs(value, fixture, declared, where) if fault is None else None
    except Exception as err:  # a value nothing in validate.py foresaw: still not a crash
        fault = f"{where} returned something that cannot be checked: {err!r}"
    if runs is None:
        runs = {"run": {"error": getattr(fault, "message", fault)}}
    for mode, outputs in runs.items():
        try:
            check = judge(fixture, declared, dtype, mode, outputs, entries)
        except Exception as err:
            check = Check(FAIL, math.inf, [f"{dtype}/{mode}: cannot be compared: {err!r}"])
        yield mode, check


def _unsupported(cell, unsupported, declared):
    """`n/a` when the implementation said so for every dtype, else a failure."""
    reasons = sorted(set(unsupported.values()))
    if len(unsupported) == len(declared.dtypes):
        return Cell(status=NA, details=reasons)
    ran = [d for d in declared.dtypes if d not in unsupported]
    message = (
        f"unsupported in {sorted(unsupported)} ({'; '.join(reasons)}) but computed in {ran}: "
        "a fixture is supported in every declared dtype or in none"
    )
    return Cell(FAIL, math.inf, [message, *cell.details])


def select(adapters, names):
    """The adapters named in `names`, in the order given; a `UsageError` for an unknown one."""
    known = {}
    for adapter in adapters:
        known.setdefault(_label(adapter), []).append(adapter)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"unknown backend(s) {unknown}; known: {list(known)}")
    return [a for n in dict.fromkeys(names) for a in known[n]]


def _label(adapter):
    """The adapter's name for messages, whatever its `name` attribute holds."""
    try:
        name = adapter.name
    except Exception:
        name = None
    return name if isinstance(name, str) and name else f"<{type(adapter).__name__}>"


def run(fixtures, adapters=None, *, required=False, entries=None, log=None,
        timeout=DEFAULT_TIMEOUT, fresh=None):
    """Run `adapters` (default: every one) over `fixtures` and fresh cases; returns an
    `Outcome`.

    With `required` (adapters named on the command line, or `--strict`), an adapter that
    is not available, or that is compared on no fixture, fails the run; otherwise an
    unavailable one is only listed as skipped. `timeout` limits each call for one fixture
    (seconds). `log`, if given, receives progress lines. `fresh` (a `fresh.Fresh`): the
    fresh cases every adapter runs beside the fixtures; `None` draws one per loss variant
    of `fixtures` with a new seed (`Fresh.none(reason)`: none).
    """
    if not fixtures:
        raise UsageError("no fixtures to run: expected at least one fixture file (*.json)")
    taken = [f["name"] for f in fixtures if is_fresh(f["name"])]
    if taken:
        raise UsageError(f"fixture names {taken} start with {PREFIX!r}, which names the "
                         "runner's fresh cases: rename them")
    adapters = all_adapters() if adapters is None else list(adapters)
    fresh = draw(fixtures) if fresh is None else fresh
    session = _Session(fixtures, Outcome(fresh=fresh), required, entries, log, timeout)
    if fresh.fixtures:
        session.say(f"{len(fresh.fixtures)} fresh cases, seed {fresh.seed} (--fresh-seed "
                    f"{fresh.seed} draws them again)")
    for number, adapter in enumerate(adapters, 1):
        where = f"[{number}/{len(adapters)}] {_label(adapter)}"
        start = time.perf_counter()
        name, problem = session.run(adapter, where)
        if problem is not None:
            session.outcome.broken[name] = problem
            session.say(f"{where}: FAILED: {problem}")
        elif name in session.outcome.matrix:
            counts = summary(session.outcome.matrix[name].values())
            if session.outcome.fresh_matrix.get(name):
                counts += f"; fresh cases: {summary(session.outcome.fresh_matrix[name].values())}"
            session.say(f"{where}: {counts} in {time.perf_counter() - start:.1f} s")
    return session.outcome


@dataclass
class _Session:
    """What `run` shares with each adapter's run."""

    fixtures: list
    outcome: Outcome
    required: bool
    entries: object
    log: object
    timeout: float

    def say(self, line):
        if self.log is not None:
            self.log(line)

    def run(self, adapter, where):
        """Run one adapter into the outcome: `(its name, None)`, or `(name, why it failed
        as a whole)`."""
        label = _unique(_label(adapter), self.outcome)
        if isinstance(adapter, BrokenAdapter):
            return label, adapter.fault
        guard = Guard(adapter, self.timeout)
        try:
            value, fault = guard.call(method("available"), "available()")
            pair, problem = (None, fault.message) if fault else check_pair(value, "available()")
            if problem is not None:
                return label, problem
            if not pair[0]:
                self.say(f"{where}: not available: {pair[1]}")
                if not self.required:
                    self.outcome.skipped[label] = pair[1]
                    return label, None
                return label, f"was asked for but is not available: {pair[1]}"
            name = _unique(_label(adapter), self.outcome)  # a process learns it when started
            cases = list(self.outcome.fresh.fixtures)
            progress = _progress(self.log, where, self.fixtures + cases)
            try:
                cells = run_backend(adapter, self.fixtures + cases, self.entries, progress,
                                    guard=guard)
            except AdapterFault as err:
                return name, str(err)
            self.outcome.matrix[name] = {f["name"]: cells[f["name"]] for f in self.fixtures}
            if cases:
                fresh_cells = {case["name"]: cells[case["name"]] for case in cases}
                fresh_rules.hold(self.outcome.matrix[name], fresh_cells, self.fixtures, cases)
                self.outcome.fresh_matrix[name] = fresh_cells
            return name, _nothing_compared(self.outcome.matrix[name]) if self.required else None
        finally:
            guard.close()


def _unique(name, outcome):
    """`name`, or `name#2`... when an adapter of that name already ran."""
    taken = set(outcome.matrix) | set(outcome.skipped) | set(outcome.broken)
    if name not in taken:
        return name
    number = 2
    while f"{name}#{number}" in taken:
        number += 1
    return f"{name}#{number}"


def _nothing_compared(cells):
    """Why an adapter asked for was compared on no fixture, or `None`."""
    if any(c.status in (PASS, *ERRORS) for c in cells.values()):
        return None
    return (
        f"was compared on no fixture ({summary(cells.values())}): it must pass or fail "
        "at least one"
    )


def _progress(log, where, fixtures):
    if log is None:
        return None

    def progress(done, total, name):
        if name is None:
            log(f"{where}: preparing {total} cases ({len(fixtures) - total} n/a)")
        elif name:
            log(f"{where}: fixture {done + 1}/{total} {name}")

    return progress
