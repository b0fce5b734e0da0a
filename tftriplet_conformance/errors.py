"""The errors the runner raises itself (never an adapter's fault).

A mistake on the command line or in the input (an unknown backend or fixture name, a
folder with no fixture, an unreadable fixture file) is a `UsageError`: the command line
prints it as a usage error (exit status 2). Everything an adapter does wrong is reported as
that adapter's failure instead, and the run goes on.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A mistake in what the runner was asked to do, named with what was expected."""


class AdapterFault(Exception):
    """An adapter that cannot be run at all (its declarations are wrong), with the reason."""
