"""Peer libraries as backends: declared differences, outputs a peer does not report, the
peers' runs themselves (where their packages are installed) and the generated report."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tftriplet_conformance import FIXTURES_DIR
from tftriplet_conformance.adapters import peer_adapters, peer_names
from tftriplet_conformance.adapters.numpy import NumpyAdapter
from tftriplet_conformance.compare import compare
from tftriplet_conformance.differs import Difference
from tftriplet_conformance.fixtures import dumps, load_fixture, load_fixtures
from tftriplet_conformance.fresh import PREFIX as FRESH_PREFIX
from tftriplet_conformance.runner import DIFFERS, FAIL, MATCHES, NA, PASS, failed, run_backend

REPO = Path(__file__).resolve().parents[2]
FIXTURES = load_fixtures()
BY_NAME = {f["name"]: f for f in FIXTURES}


class _TwoModes(NumpyAdapter):
    """The reference under two modes; ``scaled`` multiplies the loss by ``scale``."""

    name = "two-modes"
    not_reported = ("fraction_positive",)

    def __init__(self, scale, differences=()):
        self.scale, self.differences = scale, differences

    def run(self, fixture, dtype):
        exact = super().run(fixture, dtype)["loops"]
        exact.pop("fraction_positive", None)
        return {"exact": exact, "scaled": {**exact, "loss": exact["loss"] * self.scale}}


def _cell(adapter, name="random_b5_d7_c3_squared"):
    return run_backend(adapter, [BY_NAME[name]])[name]


def test_a_declared_difference_that_differs_is_not_a_failure():
    entry = Difference("two-modes", "scales the loss on purpose", mode="scaled")
    cell = _cell(_TwoModes(2.0, (entry,)))
    assert cell.status == PASS and cell.modes == {"exact": PASS, "scaled": DIFFERS}
    assert cell.differs == ["scaled"] and cell.text().endswith("+differs")
    assert "scales the loss on purpose" in " ".join(cell.details)
    assert not failed({"two-modes": {"x": cell}})


def test_a_declared_difference_that_matches_is_an_error():
    entry = Difference("two-modes", "claims to differ but does not", mode="scaled")
    cell = _cell(_TwoModes(1.0, (entry,)))
    assert cell.status == MATCHES and failed({"two-modes": {"x": cell}})
    assert "matches, but declared to differ (claims to differ but does not)" in cell.details[0]


def test_a_declared_difference_that_matches_on_a_fresh_case_is_a_pass():
    """Random inputs may make the two quantities coincide (pytorch-metric-learning's
    semi-hard mean over negatives, where each pair has one): only a fixture judges the
    declaration. The same run on the fixture itself stays an error."""
    entry = Difference("two-modes", "claims to differ but does not", mode="scaled")
    fixture = BY_NAME["random_b5_d7_c3_squared"]
    case = {**fixture, "name": FRESH_PREFIX + fixture["name"]}
    cell = run_backend(_TwoModes(1.0, (entry,)), [case])[case["name"]]
    assert cell.status == PASS and cell.modes == {"exact": PASS, "scaled": PASS}
    assert not failed({"two-modes": {"x": cell}})
    assert _cell(_TwoModes(1.0, (entry,))).status == MATCHES
    # a fresh case that differs as declared still differs
    differing = run_backend(_TwoModes(2.0, (entry,)), [case])[case["name"]]
    assert differing.modes == {"exact": PASS, "scaled": DIFFERS}


def test_an_undeclared_difference_fails_and_the_declaration_is_specific():
    cell = _cell(_TwoModes(2.0))
    assert cell.status == FAIL
    # a declaration for another loss does not cover this fixture
    other = Difference("two-modes", "only for semi-hard", loss={"name": "semi_hard"})
    assert _cell(_TwoModes(2.0, (other,))).status == FAIL


def test_all_modes_differing_makes_the_cell_differ():
    entry = Difference("two-modes", "both modes are off", loss={"name": "batch_all"})
    fixture = load_fixture(FIXTURES_DIR / "random_b5_d7_c3_squared.json")
    fixture["expected"]["loss"] *= 3.0
    cell = run_backend(_TwoModes(2.0, (entry,)), [fixture])[fixture["name"]]
    assert cell.status == DIFFERS and cell.text() == "differs"


def test_outputs_a_peer_does_not_report_are_listed_not_compared():
    cell = _cell(_TwoModes(1.0))
    assert cell.status == PASS and cell.not_compared == ["fraction_positive"]


def test_our_own_backends_must_report_every_output():
    fixture = BY_NAME["random_b5_d7_c3_squared"]
    outputs = NumpyAdapter().run(fixture, "float64")["loops"]
    del outputs["num_valid"]
    result = compare(fixture, outputs, "numpy", "float64")
    assert not result.passed and "num_valid: missing" in result.failures[0]
    assert compare(fixture, outputs, "x", "float64", not_reported=("num_valid",)).passed


def test_the_tensorflow_peers_say_why_they_do_not_run():
    for adapter in peer_adapters()[2:]:
        ok, reason = adapter.available()
        assert not ok
        assert adapter.module in reason and ("not installed" in reason or "failed" in reason)


def _peer(name):
    adapter = {a.name: a for a in peer_adapters()}[name]
    ok, reason = adapter.available()
    if not ok:
        pytest.skip(reason)
    return adapter


@pytest.fixture(scope="module")
def peer_cells():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = run_backend(_peer(name), FIXTURES)
        return cache[name]

    return get


@pytest.mark.parametrize("name", peer_names()[:2])
def test_peer_passes_or_declares_every_fixture(name, peer_cells):
    cells = peer_cells(name)
    bad = {f: c.details for f, c in cells.items() if c.status not in (PASS, NA, DIFFERS)}
    assert not bad, bad
    # the seed's C case runs through the peer's matching configuration
    seed = cells["seed_c_program"]
    assert seed.status == PASS and seed.modes["matched"] == PASS
    # every declared difference is needed by some fixture (none is dead)
    used = {id(e) for c in cells.values() for e in c.declared.values()}
    adapter = {a.name: a for a in peer_adapters()}[name]
    assert all(id(e) in used for e in adapter.differences), adapter.differences


def test_peer_matched_configurations_cover_every_strategy(peer_cells):
    cells = peer_cells("pytorch-metric-learning")
    ok = {
        (BY_NAME[f]["loss"]["name"], bool(BY_NAME[f]["loss"].get("soft")))
        for f, c in cells.items()
        if c.modes.get("matched") == PASS
    }
    assert {("batch_all", False), ("batch_all", True), ("batch_hard", False)} <= ok
    assert ("batch_hard", True) in ok


@pytest.mark.parametrize("name", peer_names()[:2])
def test_changing_one_golden_number_turns_a_peer_red(run_conformance, name, tmp_path):
    _peer(name)
    shutil.copy(FIXTURES_DIR / "seed_c_program.json", tmp_path)
    fixture = load_fixture(FIXTURES_DIR / "random_b5_d7_c3_squared.json")
    fixture["expected"]["gradient"][0][0] *= 1.0 + 1e-6
    (tmp_path / "random_b5_d7_c3_squared.json").write_text(dumps(fixture))
    proc = run_conformance("--backend", name, "--fixtures", str(tmp_path), "-q")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # the untouched fixture passes, the altered one (which passes as committed) fails
    assert re.search(r"seed_c_program\s+ok ", proc.stdout), proc.stdout
    assert f"{name} / random_b5_d7_c3_squared: FAIL" in proc.stdout
    assert "gradient (max abs)" in proc.stdout
    assert "seed_c_program: FAIL" not in proc.stdout


def test_docs_peers_md_is_current(run_conformance):
    for name in peer_names()[:2]:
        _peer(name)
    proc = run_conformance("report", "--check", "--out", "docs/peers.md")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_probe_reports_the_real_import_error(tmp_path, monkeypatch):
    """An installed peer that cannot be imported is skipped with the import's own error."""
    from tftriplet_conformance.adapters.tensorflow_peers import TensorFlowAddonsAdapter

    package = tmp_path / "tensorflow_addons"
    package.mkdir()
    (package / "__init__.py").write_text("import a_module_that_is_not_there\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(REPO)]))
    ok, reason = TensorFlowAddonsAdapter().available()
    assert not ok
    assert reason.startswith("'import tensorflow_addons as tfa; tfa.losses.TripletSemiHardLoss")
    error = "failed: ModuleNotFoundError: No module named 'a_module_that_is_not_there'"
    assert reason.endswith(error), reason


def test_an_error_is_never_a_declared_difference():
    class Raises(_TwoModes):
        def run(self, fixture, dtype):
            raise RuntimeError("the peer crashed")

    entry = Difference("two-modes", "every mode differs", mode="*")
    cell = _cell(Raises(1.0, (entry,)))
    assert cell.status == FAIL and "the peer crashed" in cell.details[0]
