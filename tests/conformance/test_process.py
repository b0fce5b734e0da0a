"""Implementations in other languages, through the process protocol: the Node.js example
and its wrong twin, the C program, and processes that break the protocol
(fake_process.py), each beside the float64 reference, which must go on passing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fresh_expect import default_fresh, fresh_line

from tftriplet_conformance.adapters.numpy import NumpyAdapter
from tftriplet_conformance.adapters.process import PROTOCOL, ProcessAdapter, run_request
from tftriplet_conformance.fixtures import load_fixtures
from tftriplet_conformance.reference import triple_hinges
from tftriplet_conformance.runner import FAIL, PASS, run

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NODE_DIR = REPO / "conformance" / "examples" / "node"
FIXTURES = load_fixtures()
BY_NAME = {f["name"]: f for f in FIXTURES}
TWO = [BY_NAME["batch_hard_b8_d4_c3"], BY_NAME["seed_c_program"]]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)])}
DOC = (REPO / "docs" / "conformance.md").read_text()


def _node():
    if shutil.which("node") is None:
        pytest.skip("node is not installed (tox -e process needs it; .ci/run installs it)")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tftriplet_conformance", "-q", *args],
                          capture_output=True, text=True, env=ENV, cwd=REPO)


def test_the_node_example_passes_every_fixture():
    _node()
    proc = _cli("--command", f"node {NODE_DIR / 'triplet.js'}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the optional memory fixtures are n/a: the example does not claim the feature
    everything = load_fixtures(with_optional=True)
    n, m = len(FIXTURES), len(everything) - len(FIXTURES)
    assert f"\n{n + m} fixtures x 1 backends: {m} n/a, {n} ok\n" in proc.stdout, (
        proc.stdout[-500:]
    )
    assert "the optional feature 'memory' is not claimed (features=[])" in proc.stdout
    # and every fresh case drawn for this run (one per loss variant), through the protocol
    core, memory = default_fresh(everything)
    assert core == 15, "every strategy, distance and margin form has fixtures"
    assert fresh_line(proc.stdout)[:3] == (core + memory, 1, f"{memory} n/a, {core} ok")
    assert proc.stdout.endswith("draws them again)\n")
    assert "triplet.js" in proc.stdout.splitlines()[1]  # the column: its announced name


def _has_zero_hinge(fixture):
    """Some valid triple's d(i,j) - d(i,k) + margin is exactly 0 in float64."""
    loss = fixture["loss"]
    labels = np.array(fixture["inputs"]["labels"], dtype=np.int64)
    hinges = triple_hinges(labels, fixture["inputs"]["embeddings"], loss["margin"],
                           loss.get("distance", "euclidean"))
    return bool(np.any(hinges == 0.0))


def test_its_wrong_twin_fails_with_a_readable_report():
    """triplet_wrong.js counts a hinge of exactly 0 as active: every fixture it fails has
    such a hinge, and the batch-all hinge fixtures with one all fail, naming the count."""
    _node()
    proc = _cli("--command", f"node {NODE_DIR / 'triplet_wrong.js'}")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failing = set(re.findall(r"^(\w+)\s+FAIL inf$", proc.stdout, flags=re.M))
    assert failing and all(_has_zero_hinge(BY_NAME[name]) for name in failing), failing
    hinge = {f["name"] for f in FIXTURES if f["loss"]["name"] == "batch_all"
             and not f["loss"].get("soft") and _has_zero_hinge(f)}
    assert hinge and hinge <= failing
    for name in hinge:
        fixture = BY_NAME[name]
        zeros = int(np.sum(triple_hinges(
            np.array(fixture["inputs"]["labels"], dtype=np.int64),
            fixture["inputs"]["embeddings"], fixture["loss"]["margin"],
            fixture["loss"]["distance"]) == 0.0))
        want = fixture["expected"]["num_positive"]
        assert f"triplet_wrong.js / {name}: FAIL" in proc.stdout
        assert f"float64/triplet_wrong.js: num_positive {want + zeros} vs {want}: " in proc.stdout
    # the output docs/conformance.md shows is this run's
    shown = re.search(r"triplet_wrong.js\"\n(#.*?)\n```", DOC, flags=re.S).group(1)
    for line in shown.splitlines():
        assert line[2:] in proc.stdout, line


def test_docs_quote_the_node_examples_protocol_half_verbatim():
    blocks = re.findall(r"```javascript\n(.*?)```", DOC, flags=re.S)
    assert blocks and all(b in (NODE_DIR / "triplet.js").read_text() for b in blocks)


def test_the_documented_session_is_what_the_runner_sends_and_the_example_answers():
    _node()
    session = re.search(r"```text\n(> \{.*?)```", DOC, flags=re.S).group(1).splitlines()
    sent = [line[2:] for line in session if line.startswith("> ")]
    fixture = BY_NAME[json.loads(sent[1])["fixture"]]
    assert sent == [json.dumps({"type": "start", "protocol": PROTOCOL}),
                    json.dumps(run_request(fixture, "float64", 1)),
                    json.dumps({"type": "stop"})]
    proc = subprocess.run(["node", str(NODE_DIR / "triplet.js")], input="\n".join(sent) + "\n",
                          capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines() == [line[2:] for line in session if line.startswith("< ")]
    assert json.loads(proc.stdout.splitlines()[1])["outputs"]["loss"] == (
        fixture["expected"]["loss"])


def test_the_c_program_speaks_the_protocol(tmp_path):
    from tftriplet_conformance.adapters.c import CAdapter, compile_c, compiler

    if compiler() is None:
        pytest.skip("no C compiler")
    outcome = run(TWO, [CAdapter()], required=True)
    cells = outcome.matrix["c"]
    assert cells["seed_c_program"].status == PASS and not outcome.failed
    assert "triplet.c" in cells["seed_c_program"].modes
    assert cells["batch_hard_b8_d4_c3"].details == [
        "triplet.c implements only batch_all, not batch_hard"]
    # a line that is not JSON gets an error reply, and the program goes on
    exe = compile_c(REPO / "conformance" / "c" / "triplet.c", tmp_path)
    talk = subprocess.run([str(exe)], input='{"type":"start","protocol":1}\nnot json\n'
                          '{"type":"run","id":7,"loss":{"name":"semi_hard","margin":0.2}}\n',
                          capture_output=True, text=True, check=True).stdout.splitlines()
    assert f'"protocol":{PROTOCOL}' in talk[0]
    assert talk[1] == '{"type":"error","id":null,"message":"expected a JSON value"}'
    assert talk[2] == ('{"type":"unsupported","id":7,"reason":'
                       '"triplet.c implements only batch_all, not semi_hard"}')


def _fake(fault, *extra):
    return ProcessAdapter([sys.executable, str(HERE / "fake_process.py"), fault, *extra],
                          env=ENV)


def _beside_reference(adapter, timeout=60):
    outcome = run(TWO, [adapter, NumpyAdapter()], required=True, timeout=timeout)
    assert {c.status for c in outcome.matrix["numpy"].values()} == {PASS}, outcome.matrix
    return outcome


def test_a_well_behaved_process_passes():
    outcome = _beside_reference(_fake("none"))
    assert not outcome.failed and set(outcome.matrix) == {"fake-none", "numpy"}


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("crash", "the process exited with status 3 before replying to request 1 (fixture "
         "'batch_hard_b8_d4_c3', float64); its stderr ends with: fake_process: segmentation "
         "fault (pretend)"),
        ("not-json", "the process replied to request 1 (fixture 'batch_hard_b8_d4_c3', "
         "float64) with a line that is not JSON"),
        ("silent", "the process exited with status 0 before replying to request 1"),
        ("wrong-id", "answered request 1 (fixture 'batch_hard_b8_d4_c3', float64) with the "
         "id 99: expected 1"),
        ("float32-unsupported", "unsupported in ['float32'] (no float32 here) but computed in "
         "['float64']"),
    ],
)
def test_a_process_fault_fails_that_request_and_the_others_go_on(fault, message):
    outcome = _beside_reference(_fake(fault))
    cells = outcome.matrix[f"fake-{fault}"]
    assert {c.status for c in cells.values()} == {FAIL}
    assert message in cells["batch_hard_b8_d4_c3"].details[0], cells


def test_after_a_crash_the_process_is_started_again_for_the_next_fixture():
    outcome = _beside_reference(_fake("crash", "batch_hard_b8_d4_c3"))
    cells = outcome.matrix["fake-crash"]
    assert cells["batch_hard_b8_d4_c3"].status == FAIL
    assert cells["seed_c_program"].status == PASS


def test_a_hanging_process_is_killed_after_the_time_limit():
    outcome = _beside_reference(_fake("hang"), timeout=1)
    first, second = (outcome.matrix["fake-hang"][f["name"]] for f in TWO)
    assert "did not return within 1 s (--timeout): a hang; stopped, it failed: the process " \
           "was killed by signal SIGKILL before replying to request 1" in first.details[0]
    assert "not made: the adapter was abandoned" in second.details[0]


def test_a_process_speaking_another_protocol_version_fails_as_a_whole():
    outcome = _beside_reference(_fake("protocol"))
    (reason,) = outcome.broken.values()
    assert f"speaks protocol 2; this runner speaks protocol {PROTOCOL}" in reason


def test_a_command_that_does_not_exist_fails_when_named():
    proc = _cli("--command", "no-such-program-xyz --flag", "--backend", "numpy",
                "--fixture", "seed_c_program")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ("no-such-program-xyz --flag: FAILED: was asked for but is not available: "
            "'no-such-program-xyz' was not found") in proc.stdout
    assert re.search(r"seed_c_program\s+ok ", proc.stdout), proc.stdout
