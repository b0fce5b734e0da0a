"""Any implementation, in any language, as a process speaking a small JSON protocol.

`python -m tftriplet_conformance --command "node triplet.js"` starts the command and
exchanges JSON messages with it, one per line, over its stdin and stdout
(`docs/conformance.md`, "The process protocol", is the specification):

    -> {"type": "start", "protocol": 1}
    <- {"type": "started", "protocol": 1, "implementation": {"name": "triplet.js", ...},
        "dtypes": ["float64"], "differentiable": true, "not_reported": [],
        "features": []}                  (optional: the optional features it claims)
    -> {"type": "run", "id": 1, "fixture": "...", "dtype": "float64",
        "loss": {...the fixture's loss...}, "inputs": {"labels": [...], "embeddings": [[...]]}}
    <- {"type": "result", "id": 1, "outputs": {"loss": ..., "gradient": [[...]], ...}}
       or {"type": "unsupported", "id": 1, "reason": "..."}
       or {"type": "error", "id": 1, "message": "..."}
    -> {"type": "stop"}

A process that claims the optional feature `memory` also gets those fixtures: the request
then has `"feature": "memory"`, the fixture's `memory` object and `inputs` as `{"steps":
[...]}`, and the reply's outputs are `{"steps": [outputs of each step]}`.

The implementation is never trusted: a crash, a reply that is not the protocol's, or no
reply is that request's failure, and the process is started again for the next request;
a hang is stopped by the runner's time limit, which kills the process (`close`).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile

from tftriplet_conformance.adapters import Adapter, Unsupported
from tftriplet_conformance.guard import ImplementationFault

#: The protocol version this runner speaks.
PROTOCOL = 1
#: Seconds a process may take to exit after `stop` before it is killed.
_EXIT_GRACE = 2.0
#: Bytes of a process's stderr quoted when it fails.
_STDERR_TAIL = 1500


class ProcessAdapter(Adapter):
    """An implementation run as `command` (a string, split as a shell would, or a list).

    Its `dtypes`, `differentiable` and `not_reported` are what it announces when it
    starts; its `name` is `name`, or else the name it announces.
    """

    dtypes = ()
    differentiable = False

    def __init__(self, command, name=None, cwd=None, env=None):
        self.argv = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
        self.name = name or " ".join(self.argv)
        self._fixed_name = name is not None
        self.cwd, self.env = cwd, env
        #: What the implementation announced (`implementation`, `dtypes`, ...), once started.
        self.announced = None
        self._proc = self._stderr = None
        self._requests = 0

    @property
    def mode(self):
        """The mode its results are filed under: the implementation's own name."""
        return self.announced["implementation"]["name"]

    def available(self):
        if not self.argv:
            return False, "the command is empty"
        if shutil.which(self.argv[0]) is None:
            return False, f"{self.argv[0]!r} was not found (not on PATH, not an executable file)"
        self.start()
        return True, ""

    def start(self):
        """Start the process and check its answer to the start message."""
        self.stop()
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,  # close() kills what it starts, too
            )
        except OSError as err:
            raise ImplementationFault(f"{shlex.join(self.argv)} could not start: {err}") from err
        reply = self._exchange({"type": "start", "protocol": PROTOCOL}, "the start message")
        self._handshake(reply)

    def _handshake(self, reply):
        if reply.get("type") == "error":
            self._fail(f"refused the start message: {reply.get('message')!r}")
        if reply.get("type") != "started":
            self._fail(f"answered the start message with {_brief(reply)}: expected 'started'")
        if reply.get("protocol") != PROTOCOL:
            self._fail(
                f"speaks protocol {reply.get('protocol')!r}; this runner speaks protocol "
                f"{PROTOCOL} (its 'started' reply must say \"protocol\": {PROTOCOL})"
            )
        implementation = reply.get("implementation")
        if not isinstance(implementation, dict) or not _text(implementation.get("name")):
            self._fail("announced no implementation name: expected \"implementation\": "
                       "{\"name\": \"...\", ...} in its 'started' reply")
        announced = {
            "implementation": implementation,
            "dtypes": reply.get("dtypes"),
            "differentiable": reply.get("differentiable"),
            "not_reported": reply.get("not_reported", []),
            "features": reply.get("features", []),
        }
        if self.announced is not None and announced != self.announced:
            self._fail(f"announced {announced} when restarted, {self.announced} at first")
        self.announced = announced
        # the runner checks these as any adapter's attributes (validate.check_declarations)
        self.dtypes = _as_tuple(announced["dtypes"])
        self.differentiable = announced["differentiable"]
        self.not_reported = _as_tuple(announced["not_reported"])
        self.features = _as_tuple(announced["features"])
        if not self._fixed_name:
            self.name = implementation["name"]

    def run(self, fixture, dtype):
        if self._proc is None:
            self.start()
        self._requests += 1
        request = run_request(fixture, dtype, self._requests)
        what = f"request {request['id']} (fixture {fixture['name']!r}, {dtype})"
        reply = self._exchange(request, what)
        if reply.get("id") != request["id"]:
            self._fail(f"answered {what} with the id {reply.get('id')!r}: expected {request['id']}")
        kind = reply.get("type")
        if kind == "result" and isinstance(reply.get("outputs"), dict):
            return {self.mode: reply["outputs"]}
        if kind == "unsupported":
            raise Unsupported(str(reply.get("reason") or "unsupported (no reason given)"))
        if kind == "error":
            return {self.mode: {"error": str(reply.get("message"))}}
        self._fail(
            f"answered {what} with {_brief(reply)}: expected a 'result' with an 'outputs' "
            "object, 'unsupported' or 'error'"
        )

    def _exchange(self, message, what):
        """Send one message and read one reply line; any fault stops the process."""
        proc = self._proc
        try:
            proc.stdin.write((json.dumps(message, allow_nan=False) + "\n").encode())
            proc.stdin.flush()
        except OSError:
            self._fail(self._ended(proc, f"before reading {what}"))
        raw = proc.stdout.readline()
        if not raw:
            self._fail(self._ended(proc, f"before replying to {what}"))
        try:
            reply = json.loads(raw.decode("utf-8"))
        except ValueError as err:  # UnicodeDecodeError is a ValueError too
            self._fail(
                f"replied to {what} with a line that is not JSON ({err}): {raw[:200]!r}; "
                "write one JSON object per line on stdout, anything else on stderr"
            )
        if not isinstance(reply, dict):
            self._fail(f"replied to {what} with {_brief(reply)}: expected a JSON object")
        return reply

    def _ended(self, proc, when):
        try:
            status = proc.wait(timeout=_EXIT_GRACE)
        except subprocess.TimeoutExpired:
            return f"closed its stdout {when}"
        if status < 0:
            try:
                name = signal.Signals(-status).name
            except ValueError:
                name = str(-status)
            return f"was killed by signal {name} {when}"
        return f"exited with status {status} {when}"

    def _fail(self, problem):
        """Stop the process and raise: the next request starts it again."""
        message = f"the process {problem}{self._stderr_tail()}"
        self.stop()
        raise ImplementationFault(message)

    def _stderr_tail(self):
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - _STDERR_TAIL))
            text = self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return f"; its stderr ends with: {text}" if text else ""

    def close(self):
        """The end of the run: stop the process."""
        self.stop()

    def stop(self):
        """Send `stop`, give the process a moment to exit, then kill it."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.stdin.write((json.dumps({"type": "stop"}) + "\n").encode())
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=_EXIT_GRACE)
            except subprocess.TimeoutExpired:
                _kill(proc)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def run_request(fixture, dtype, number):
    """The `run` message for one fixture and dtype: its loss and inputs as they are (and
    the `feature` and `memory` objects of a memory fixture)."""
    request = {
        "type": "run",
        "id": number,
        "fixture": fixture["name"],
        "dtype": dtype,
        "loss": fixture["loss"],
        "inputs": fixture["inputs"],
    }
    request.update({key: fixture[key] for key in ("feature", "memory") if key in fixture})
    return request


def _kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (OSError, AttributeError):  # no process groups (Windows) or already gone
        proc.kill()
    proc.wait()


def _brief(value, limit=120):
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _text(value):
    return isinstance(value, str) and bool(value)


def _as_tuple(value):
    """A JSON list as a tuple; anything else as is, for the runner to name it wrong."""
    return tuple(value) if isinstance(value, list) else value
