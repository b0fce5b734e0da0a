"""Calls into an adapter on a thread of its own, with a time limit, never trusted.

Every call the runner makes into an adapter (reading its attributes, `available`,
`supports`, `prepare`, `run`, `close`) goes through its `Guard`. Whatever the call does
becomes a value or a `Fault`, never an exception in the runner:

- an exception, `SystemExit` and `os._exit` included, is a fault described with the
  adapter's own file and line (and the innermost frame, when that is elsewhere);
- a call that does not return within its time limit is a *hang*: the adapter is
  abandoned (later calls are not made, its `close()` is called from another thread so that
  a process adapter kills its process) and its worker thread is left behind as a daemon.

A Python call that hangs cannot be interrupted safely in its own process, so the runner
stops waiting for it instead; an implementation that must be stopped for real runs as a
process (`adapters.process`), which `close()` kills.
"""

from __future__ import annotations

import inspect
import os
import queue
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

#: Seconds one call for one fixture may take (`--timeout`); `prepare` gets this much per
#: fixture it prepares.
DEFAULT_TIMEOUT = 600.0
#: Seconds `close()` may take after a hang, and then the hung call to give its last word.
_CLOSE_AFTER_HANG, _LAST_WORD = 5.0, 1.0

_HERE = str(Path(__file__).resolve())
#: The real `os._exit` (the runner replaces it for adapter threads).
REAL_EXIT = os._exit


class AdapterExit(BaseException):
    """Raised instead of `os._exit` when an adapter calls it (a `BaseException`, as
    `SystemExit` is, so that an adapter's `except Exception` does not swallow it)."""


class ImplementationFault(Exception):
    """A fault of an implementation outside Python (a process adapter's process crashed,
    hung or broke the protocol): its message says everything, no Python frame helps."""


def _guarded_exit(status):
    if getattr(threading.current_thread(), "adapter_worker", False):
        raise AdapterExit(f"called os._exit({status!r})")
    REAL_EXIT(status)


def _install_exit_guard():
    """`os._exit` raises `AdapterExit` in adapter threads (and exits anywhere else)."""
    for module in (os, sys.modules.get("posix"), sys.modules.get("nt")):
        if module is not None and getattr(module, "_exit", None) is REAL_EXIT:
            module._exit = _guarded_exit


@dataclass(frozen=True)
class Fault:
    """Why a call into an adapter gave no value. `error` is the exception, if it raised."""

    message: str
    error: BaseException | None = None


class _Job:
    def __init__(self, fn, adapter):
        self.fn, self.adapter = fn, adapter
        self.done = threading.Event()
        self.value = self.error = None


class Guard:
    """One adapter's calls, made one at a time on its own worker thread.

    Args:
        adapter: the adapter object.
        timeout: the default time limit of one call, in seconds.
    """

    def __init__(self, adapter, timeout=DEFAULT_TIMEOUT):
        self.adapter = adapter
        self.timeout = float(timeout)
        #: The message of the hang that abandoned the adapter, or `None`.
        self.abandoned = None
        self._jobs = queue.SimpleQueue()
        self._thread = None
        self._closed = False

    def call(self, fn, what, limit=None):
        """`(value, None)` from `fn(adapter)`, or `(None, Fault)`; `what` names the call in
        messages (e.g. `"run(fixture 'x', 'float64')"`)."""
        if self.abandoned is not None:
            return None, Fault(f"{what} not made: {self.abandoned}")
        if self._closed:
            return None, Fault(f"{what} not made: the adapter was closed")
        job = _Job(fn, self.adapter)
        self._start()
        self._jobs.put(job)
        limit = self.timeout if limit is None else limit
        try:
            finished = job.done.wait(limit)
        except BaseException:  # Ctrl-C: stop what the adapter started (a process), then stop
            self.abandoned = "the run was interrupted"
            _close_in_thread(self.adapter)
            raise
        if not finished:
            self.abandoned = f"the adapter was abandoned after {what} hung ({limit:g} s)"
            message = f"{what} did not return within {limit:g} s (--timeout): a hang"
            return None, Fault(message + self._after_hang(job))
        if job.error is not None:
            return None, Fault(f"{what} {describe(job.error, self.adapter)}", error=job.error)
        return job.value, None

    def close(self):
        """The adapter's `close()` (if it has one), then the worker thread ends; once."""
        if self.abandoned is None and self._thread is not None and not self._closed:
            self.call(_close_quietly, "close()", min(self.timeout, _CLOSE_AFTER_HANG * 12))
            self._jobs.put(None)
        self._closed = True

    def _start(self):
        if self._thread is None:
            _install_exit_guard()
            self._thread = threading.Thread(target=self._work, daemon=True, name="adapter")
            self._thread.adapter_worker = True
            self._thread.start()

    def _work(self):
        while (job := self._jobs.get()) is not None:
            try:
                job.value = job.fn(job.adapter)
            except BaseException as err:  # SystemExit and os._exit are the adapter's faults
                job.error = err
            finally:
                job.done.set()

    def _after_hang(self, job):
        """Close the abandoned adapter from another thread (a process adapter kills its
        process there), and add what the hung call said once unblocked, if anything."""
        closer = _close_in_thread(self.adapter)
        if job.done.wait(_LAST_WORD if not closer.is_alive() else 0) and job.error is not None:
            return f"; stopped, it {describe(job.error, self.adapter)}"
        return "; the adapter was abandoned"


def _close_in_thread(adapter):
    """`adapter.close()` on a thread of its own, waited for a few seconds; the thread."""
    closer = threading.Thread(target=_close_quietly, args=(adapter,), daemon=True)
    closer.adapter_worker = True
    closer.start()
    closer.join(_CLOSE_AFTER_HANG)
    return closer


def _close_quietly(adapter):
    """`adapter.close()` if it has one; releasing is housekeeping, not what is certified,
    so its faults are not reported (after a hang, the hang is)."""
    try:
        if callable(getattr(adapter, "close", None)):
            adapter.close()
    except BaseException:
        pass


def describe(error, adapter=None):
    """`"raised Type: message (at file:line in function)"` for an exception an adapter
    raised; the adapter's own frame first, then the innermost one if it is elsewhere."""
    if isinstance(error, ImplementationFault):
        return f"failed: {error}"
    if isinstance(error, AdapterExit):
        what = str(error)
    elif isinstance(error, SystemExit):
        what = f"raised SystemExit({error.code!r})"
    else:
        what = f"raised {type(error).__name__}: {error}"
    frames = traceback.extract_tb(error.__traceback__)
    frames = [f for f in frames if _resolved(f.filename) != _HERE and f.filename[:1] != "<"]
    if isinstance(error, SyntaxError) and error.filename:
        return f"{what} (at {_short(error.filename)}:{error.lineno})"
    if not frames:
        return what
    own_files = _source_files(adapter)
    own = next((f for f in reversed(frames) if _resolved(f.filename) in own_files), None)
    places = [f for f in (own, frames[-1]) if f is not None]
    if len(places) == 2 and places[0] is places[1]:
        places = places[:1]
    text = "; raised in ".join(f"{_short(f.filename)}:{f.lineno} in {f.name}" for f in places)
    return f"{what} (at {text})"


def defined_at(adapter, member):
    """`"file:line"` where the adapter's `member` (a method) is defined, or `""`."""
    try:
        obj = inspect.getattr_static(adapter, member)
        func = getattr(obj, "__func__", obj)
        code = inspect.unwrap(func).__code__
    except Exception:
        return ""
    return f"{_short(code.co_filename)}:{code.co_firstlineno}"


def _source_files(adapter):
    """The files that define the adapter's class and its bases."""
    files = set()
    kind = adapter if isinstance(adapter, type) else type(adapter)
    for cls in kind.__mro__ if adapter is not None else ():
        try:
            files.add(inspect.getsourcefile(cls))
        except (TypeError, OSError):
            continue
    return {_resolved(f) for f in files if f}


def _resolved(filename):
    try:
        return str(Path(filename).resolve())
    except OSError:
        return filename


def _short(filename):
    """A path relative to the working directory when it is below it."""
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd()))
    except (ValueError, OSError):
        return filename
