"""A process implementation for the runner's tests, speaking the process protocol with the
float64 reference's answers, or with one fault: `python fake_process.py FAULT [FIXTURE]`.

FAULT is one of: `none`, `crash` (exit 3 with a message on stderr), `hang`, `not-json`,
`protocol` (announces protocol 2), `silent` (reads a request and exits 0 without
replying), `wrong-id`, `float32-unsupported` (announces float64 and float32, answers
`unsupported` for float32 only), `memory` (claims the optional feature memory and answers
its fixtures right), `memory-alone` (claims it, but mines each batch alone), `lookup`
(computes nothing: answers from the golden files by the fixture's name, `unsupported` for
a name no file has). With FIXTURE, only requests for that fixture get the fault.
"""

import json
import pathlib
import sys
import time

from tftriplet_conformance import FIXTURES_DIR
from tftriplet_conformance.adapters.numpy import NumpyAdapter

FAULT = sys.argv[1]
ONLY = sys.argv[2] if len(sys.argv) > 2 else None


def reply(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(request):
    """The reply to a run request, faulty where asked."""
    fault = FAULT if ONLY in (None, request["fixture"]) else "none"
    if fault == "crash":
        sys.stderr.write("fake_process: segmentation fault (pretend)\n")
        sys.exit(3)
    if fault == "hang":
        time.sleep(60)
    if fault == "silent":
        sys.exit(0)
    if fault == "not-json":
        sys.stdout.write("computing the loss...\n")
        sys.stdout.flush()
        return None
    if fault == "lookup":
        return looked_up(request)
    if fault == "float32-unsupported" and request["dtype"] == "float32":
        return {"type": "unsupported", "id": request["id"], "reason": "no float32 here"}
    fixture = {"name": request["fixture"], "loss": request["loss"], "inputs": request["inputs"]}
    if fault == "memory-alone" and "memory" in request:  # the batches, forgetting the memory
        steps = [{**fixture, "inputs": step} for step in request["inputs"]["steps"]]
        outputs = {"steps": [NumpyAdapter().run(step, "float64")["loops"] for step in steps]}
    else:
        fixture.update({k: request[k] for k in ("feature", "memory") if k in request})
        outputs = NumpyAdapter().run(fixture, "float64")["loops"]
    return {"type": "result", "id": 99 if fault == "wrong-id" else request["id"],
            "outputs": outputs}


def looked_up(request):
    for path in pathlib.Path(FIXTURES_DIR).rglob("*.json"):
        data = json.loads(path.read_text())
        if data["name"] == request["fixture"]:
            return {"type": "result", "id": request["id"], "outputs": data["expected"]}
    return {"type": "unsupported", "id": request["id"], "reason": "not implemented"}


def main():
    for line in sys.stdin:
        request = json.loads(line)
        if request["type"] == "start":
            dtypes = ["float64", "float32"] if FAULT == "float32-unsupported" else ["float64"]
            reply({"type": "started", "protocol": 2 if FAULT == "protocol" else 1,
                   "implementation": {"name": f"fake-{FAULT}", "language": "Python"},
                   "dtypes": dtypes, "differentiable": True,
                   **({"features": ["memory"]} if FAULT.startswith("memory") else {})})
        elif request["type"] == "stop":
            return
        else:
            message = answer(request)
            if message is not None:
                reply(message)


if __name__ == "__main__":
    main()
