"""Killing a training process at a known point: it reports its progress on stdout, and a
run told to pause prints ``PAUSED <step>`` and waits; the test then sends SIGKILL. Nothing
depends on timing: a process is only killed once it waits at the chosen point."""

from __future__ import annotations

import os
import queue
import signal
import threading
import time

import pytest
from processes import spawn


class Run:
    """A started script whose output lines are read as they come (a thread drains stdout,
    so the process never blocks on a full pipe)."""

    def __init__(self, script, args, out, env):
        self.proc = spawn(script, args, out, env)
        self.lines = []
        self._queue = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _fail(self, why):
        self.kill()
        pytest.fail(f"{self.proc.args} {why}:\n" + "\n".join(self.lines[-60:]))

    def wait_for(self, line, timeout):
        """Read output until ``line``; fail (with the output) if the process ends first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self._fail(f"did not print {line!r} within {timeout} s")
            if got is None:
                self.proc.wait()
                self._fail(f"ended (exit {self.proc.returncode}) before printing {line!r}")
            self.lines.append(got)
            if got == line:
                return

    def finish(self, timeout):
        """Wait for a clean exit; fail with the output otherwise."""
        self.wait_for_end(timeout)
        if self.proc.returncode != 0:
            pytest.fail(f"{self.proc.args} failed:\n" + "\n".join(self.lines[-60:]))

    def wait_for_end(self, timeout):
        deadline = time.monotonic() + timeout
        while (got := self._next(deadline)) is not None:
            self.lines.append(got)
        self.proc.wait()

    def _next(self, deadline):
        try:
            return self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            self._fail("timed out")

    def kill(self):
        """SIGKILL the process group (the process and anything it started)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def value(self, prefix):
        """The integer after ``prefix`` on the first output line that starts with it."""
        for line in self.lines:
            if line.startswith(prefix + " "):
                return int(line.split()[1])
        pytest.fail(f"{self.proc.args} printed no {prefix!r} line:\n" + "\n".join(self.lines))


def kill_at(run, step, timeout):
    """Wait until ``run`` pauses after ``step``, then SIGKILL it."""
    run.wait_for(f"PAUSED {step}", timeout)
    run.kill()
    assert run.proc.returncode == -signal.SIGKILL
