"""Expected failures, declared per backend, each with its reason.

An entry matches (backend, fixture, dtype, mode) by `fnmatch` patterns. A matching run
that fails is reported `xfail`; one that passes is `XPASS`, an error: the entry is
stale and must be removed. Keep this list short and every reason specific.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class ExpectedFailure:
    backend: str
    fixture: str
    reason: str
    dtype: str = "*"
    mode: str = "*"

    def matches(self, backend, fixture, dtype, mode):
        return (
            fnmatchcase(backend, self.backend)
            and fnmatchcase(fixture, self.fixture)
            and fnmatchcase(dtype, self.dtype)
            and fnmatchcase(mode, self.mode)
        )


EXPECTED_FAILURES = ()


def expected_failure(backend, fixture, dtype, mode, entries=None):
    """The matching `ExpectedFailure`, or `None`."""
    for entry in EXPECTED_FAILURES if entries is None else entries:
        if entry.matches(backend, fixture, dtype, mode):
            return entry
    return None
