"""The runner tested like a product: each fault issue 18 found (misbehaving.py has one
adapter per fault) fails with a message naming it, and never stops the other backends.

Every in-process check runs the faulty adapter first and the float64 reference after it,
and asserts that the reference's results are still there, all ok.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import misbehaving as bad
import pytest

from tftriplet_conformance.adapters import load_or_broken
from tftriplet_conformance.adapters.numpy import NumpyAdapter
from tftriplet_conformance.errors import UsageError
from tftriplet_conformance.fixtures import load_fixtures
from tftriplet_conformance.guard import DEFAULT_TIMEOUT
from tftriplet_conformance.runner import FAIL, PASS, run

HERE = Path(__file__).resolve().parent
NAMES = ["batch_hard_b8_d4_c3", "seed_c_program"]  # the order of the run: sorted
FIXTURES = load_fixtures(names=NAMES)
BY_NAME = {f["name"]: f for f in FIXTURES}
CELL, BACKEND = "cell", "backend"


def _line_of(cls, marker):
    """The line number in misbehaving.py of the line of `cls` holding `marker`."""
    lines, first = inspect.getsourcelines(cls)
    return first + next(i for i, line in enumerate(lines) if marker in line)


def _beside_reference(adapter, timeout=60):
    """Run `adapter`, then the reference, both named (required); the reference must still
    pass every fixture."""
    outcome = run(FIXTURES, [adapter, NumpyAdapter()], required=True, timeout=timeout)
    assert {c.status for c in outcome.matrix["numpy"].values()} == {PASS}, outcome.matrix
    assert outcome.failed
    return outcome


FAULTS = [
    # exit 0 although nothing was checked
    (bad.ReturnsNoModes, CELL, "returned no modes ({}): expected {mode: outputs}"),
    (bad.ModeWithoutOutputs, CELL, "returned no outputs ({}) for a mode: expected the loss"),
    (bad.EmptyDtypes, BACKEND, "dtypes is empty: expected at least one dtype"),
    (bad.ExemptsTheLoss, BACKEND, "names the loss or the gradient: only counts may go"),
    (bad.Unavailable, BACKEND, "was asked for but is not available: it needs a GPU"),
    (bad.SupportsNothing, BACKEND, "was compared on no fixture (2 n/a)"),
    (bad.PrintsOnly, CELL, "returned only 'printed'"),
    (bad.ExitsInRun, CELL, "raised SystemExit(0)"),
    (bad.OsExitInRun, CELL, "called os._exit(0)"),
    (bad.CopiesTheAnswer, CELL, "returned None (NoneType) for a mode: expected a dict"),
    # a traceback that aborted the run
    (bad.AvailableRaises, BACKEND, "available() raised RuntimeError: the probe crashed (at "),
    (bad.AvailableBareBool, BACKEND, "available() returned True (bool): expected a pair"),
    (bad.SupportsRaises, CELL, "raised ValueError: cannot tell (at "),
    (bad.PrepareRaises, CELL, "prepare(fixtures) raised RuntimeError: the compiler is missing"),
    (bad.ReturnsNone, CELL, "returned None (NoneType): expected {mode: outputs}"),
    (bad.FlatDict, CELL, "returned a flat dict of outputs (loss, gradient, "),
    (bad.TopLevelError, CELL, "returned a top-level {'error': 'not implemented' (str)}"),
    (bad.LossAsList, CELL, "(list): expected a number (int or float)"),
    (bad.UnknownDtype, BACKEND, "'float128' (str) has no tolerance entry; known: "),
    # misreported
    (bad.RaggedGradient, CELL, "a ragged gradient (row 1 has "),
    (bad.LossAsString, CELL, "(str): expected a number (int or float)"),
    (bad.LossAsBool, CELL, "returned loss False (bool): expected a number"),
    (bad.StrDtypes, BACKEND, "dtypes is 'float64' (str): expected a tuple of dtype names"),
    # hard to read
    (bad.Raises, CELL, "raised ZeroDivisionError: float division by zero (at "),
    (bad.ReturnsError, CELL, "returned an error: out of memory"),
    (bad.NoGradient, CELL, "returned no gradient: a differentiable adapter returns 'gradient'"),
    (bad.InfiniteGradient, CELL, "gradient[0][1] inf vs "),
    (bad.WrongGradient, CELL, "gradient (max abs) at [1][2]: "),
]


@pytest.mark.parametrize(("cls", "level", "message"), FAULTS, ids=lambda x: getattr(x, "name", ""))
def test_each_fault_fails_that_adapter_with_its_name_and_the_others_go_on(cls, level, message):
    outcome = _beside_reference(cls())
    if level == BACKEND:
        assert message in outcome.broken[cls.name], outcome.broken
        return
    assert cls.name not in outcome.broken, outcome.broken
    for name, cell in outcome.matrix[cls.name].items():
        assert cell.status == FAIL, (name, cell)
        assert any(message in d for d in cell.details), (name, cell.details)


def test_an_exception_names_the_adapters_file_and_line():
    details = _beside_reference(bad.Raises()).matrix["raises"]["seed_c_program"].details
    line = _line_of(bad.Raises, "RAISES HERE")
    assert re.search(rf"\(at \S*misbehaving\.py:{line} in run\)", details[0]), details


def test_failures_are_worded_apart_raised_returned_an_error_returned_no_gradient():
    worded = {}
    for cls in (bad.Raises, bad.ReturnsError, bad.NoGradient):
        detail = _beside_reference(cls()).matrix[cls.name]["seed_c_program"].details[0]
        worded[cls.name] = detail.split(": ", 1)[1]
    assert worded["raises"].startswith("run(fixture 'seed_c_program', 'float64') raised ")
    assert worded["returnserror"].startswith("returned an error: ")
    assert worded["nogradient"].startswith("returned no gradient: ")


def test_a_gradient_mismatch_says_where_and_both_values():
    cells = _beside_reference(bad.WrongGradient()).matrix["wronggradient"]
    detail = cells["seed_c_program"].details[0]
    want = BY_NAME["seed_c_program"]["expected"]["gradient"][1][2]
    assert f"gradient (max abs) at [1][2]: {want + 0.5!r} vs {want!r}: error 0.5 > " in detail


def test_an_infinite_gradient_reads_as_not_finite_not_as_nan():
    detail = _beside_reference(bad.InfiniteGradient()).matrix["infinitegradient"][NAMES[0]]
    assert "gradient[0][1] inf vs" in detail.details[0] and "not finite" in detail.details[0]
    assert "nan" not in " ".join(detail.details)


def test_an_adapter_sees_a_copy_without_expected_and_its_edits_do_not_leak():
    before = load_fixtures(names=NAMES)
    outcome = run(FIXTURES, [bad.EditsItsFixture(), NumpyAdapter()], required=True)
    # both dtypes of the scribbling adapter still pass: each run got a fresh copy
    assert {c.status for c in outcome.matrix["edits-its-fixture"].values()} == {PASS}
    assert not outcome.failed and FIXTURES == before


@pytest.mark.parametrize("cls", [bad.ConstructorRaises, bad.ConstructorNeedsArguments])
def test_a_constructor_fault_is_that_adapters_failure(cls, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    adapter = load_or_broken(f"misbehaving:{cls.__name__}")
    outcome = _beside_reference(adapter)
    (reason,) = outcome.broken.values()
    assert reason.startswith("could not be loaded: its constructor raised ")
    if cls is bad.ConstructorRaises:
        line = _line_of(cls, "no licence file")
        assert "OSError: no licence file (at " in reason and f"misbehaving.py:{line}" in reason
    else:
        assert "missing 1 required positional argument: 'path'" in reason


def test_a_hang_is_a_failure_after_the_time_limit_and_the_others_go_on():
    try:
        outcome = _beside_reference(bad.Hangs(), timeout=1)
    finally:
        bad.Hangs.RELEASE.set()
    first, second = (outcome.matrix["hangs"][n] for n in NAMES)
    assert first.status == second.status == FAIL
    assert "did not return within 1 s (--timeout): a hang" in first.details[0]
    assert "not made: the adapter was abandoned after run(fixture" in second.details[0]


def test_an_adapter_not_asked_for_that_is_not_available_is_only_skipped():
    outcome = run(FIXTURES, [bad.Unavailable(), NumpyAdapter()])
    assert outcome.skipped == {"unavailable": "it needs a GPU"} and not outcome.failed
    # --strict (required) makes it a failure
    strict = run(FIXTURES, [bad.Unavailable(), NumpyAdapter()], required=True)
    assert strict.failed and "unavailable" in strict.broken


def test_zero_fixtures_is_an_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_fixtures(tmp_path / "missing")
    with pytest.raises(UsageError, match="is empty of"):
        load_fixtures(tmp_path)
    with pytest.raises(UsageError, match="no fixtures to run"):
        run([], [NumpyAdapter()])


# -- the command line ---------------------------------------------------------------------------


def _cli(*args, path=(), env=None):
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, path), str(HERE), str(HERE.parents[1])])
    return subprocess.run([sys.executable, "-m", "tftriplet_conformance", "-q", *args],
                          capture_output=True, text=True, env=env)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ExitsInRun", "raised SystemExit(0)"),
        ("OsExitInRun", "called os._exit(0)"),
        ("RaggedGradient", "a ragged gradient (row 1 has 127 entries)"),
        ("Hangs", "did not return within 1 s (--timeout): a hang"),
    ],
)
def test_the_command_line_reports_the_fault_and_exits_1(name, message):
    proc = _cli("--adapter", f"misbehaving:{name}", "--backend", "numpy", "--timeout", "1",
                "--fixture", "seed_c_program")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{getattr(bad, name).name} / seed_c_program: FAIL" in proc.stdout
    assert message in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.startswith("seed_c_program "))
    assert row.split()[1:] == ["ok", "0", "FAIL", "inf"], row  # numpy, then the adapter


def test_an_atexit_handler_of_an_adapter_cannot_turn_a_failure_into_exit_0():
    proc = _cli("--adapter", "misbehaving:WrongAndExitsZeroAtExit", "--fixture", "seed_c_program")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "wrong-and-exits-zero-at-exit / seed_c_program: FAIL" in proc.stdout


def test_a_named_adapter_that_is_not_available_fails_from_the_command_line():
    proc = _cli("--adapter", "misbehaving:Unavailable", "--backend", "numpy")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "unavailable: FAILED: was asked for but is not available: it needs a GPU" in proc.stdout


def test_a_named_adapter_that_supports_nothing_fails_from_the_command_line():
    proc = _cli("--adapter", "plugin_example:MyLoss", "--fixture", "semi_hard_b8_d4_c3")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "my-loss: FAILED: was compared on no fixture (1 n/a)" in proc.stdout


def test_a_missing_fixtures_folder_is_an_error(tmp_path):
    proc = _cli("--backend", "numpy", "--fixtures", str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert f"no fixtures: the folder {tmp_path / 'missing'} does not exist" in proc.stderr


def _entry_point(tmp_path, value):
    """A distribution whose entry point `broken-plugin` points at `value`."""
    info = tmp_path / "broken_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[tftriplet_conformance.adapters]\nbroken-plugin = {value}\n"
    )
    return tmp_path


def test_a_broken_entry_point_fails_only_itself_and_blames_no_adapter(tmp_path):
    site = _entry_point(tmp_path, "no_such_plugin_module:Adapter")
    numpy = _cli("--backend", "numpy", "--fixture", "seed_c_program", path=[site])
    assert numpy.returncode == 0, numpy.stdout + numpy.stderr
    assert "broken-plugin" not in numpy.stdout + numpy.stderr
    named = _cli("--backend", "broken-plugin", "--backend", "numpy", "--fixture",
                 "seed_c_program", path=[site])
    assert named.returncode == 1, named.stdout + named.stderr
    assert "--adapter" not in named.stdout + named.stderr
    assert ("broken-plugin: FAILED: entry point 'broken-plugin' (no_such_plugin_module:Adapter, "
            "from broken-plugin 1.0) could not be loaded: cannot import") in named.stdout
    assert re.search(r"seed_c_program\s+ok ", named.stdout), named.stdout


def test_the_docs_state_the_default_time_limit():
    doc = (HERE.parents[1] / "docs" / "conformance.md").read_text()
    assert f"`--timeout` seconds (default {DEFAULT_TIMEOUT:g};" in doc
