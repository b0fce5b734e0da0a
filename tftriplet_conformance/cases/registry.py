"""The registry of cases: name -> how to make its inputs, and where that is defined."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    """One registered case.

    Attributes:
        name: the fixture's name (its file's stem).
        make: `() -> dict`, the case's inputs, loss and provenance (see `inputs.edge_case`).
        where: the dotted path of the code that defines it, written into the fixture's
            `provenance.generator`: `module.function`, or `module.TABLE['name']` for an
            entry of a table of random cases.
    """

    name: str
    make: Callable[[], dict]
    where: str


#: name -> `Case`, in registration order.
CASES: dict[str, Case] = {}

#: feature -> name -> `Case`: the cases of each optional feature
#: (`tftriplet_conformance.optional`), whose fixtures live in `fixtures/optional/<feature>/`.
OPTIONAL_CASES: dict[str, dict[str, Case]] = {}


def register(name, make, where):
    """Add a case; a duplicate name is an error."""
    _check_new(name)
    CASES[name] = Case(name, make, where)


def register_optional(feature, name, make, where):
    """Add a case of the optional feature `feature`; names are unique across all cases."""
    _check_new(name)
    OPTIONAL_CASES.setdefault(feature, {})[name] = Case(name, make, where)


def _check_new(name):
    taken = name in CASES or any(name in cases for cases in OPTIONAL_CASES.values())
    if taken:
        raise ValueError(f"duplicate conformance case name {name!r}")


def case(function):
    """Register `function` as the case named after it; a duplicate name is an error."""
    register(function.__name__, function, f"{function.__module__}.{function.__qualname__}")
    return function
