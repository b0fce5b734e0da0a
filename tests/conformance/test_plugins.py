"""Adapters from outside the package: ``--adapter module:Name``, the documented example, and
the runner's progress lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fresh_expect import default_fresh, fresh_line, loss_variant

from tftriplet_conformance.adapters import load_adapter
from tftriplet_conformance.fixtures import load_fixtures

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def test_the_documented_plugin_passes_from_the_command_line(run_conformance, tmp_path):
    proc = run_conformance("--adapter", "plugin_example:MyLoss", cwd=tmp_path, path=[HERE])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"seed_c_program\s+ok ", proc.stdout), proc.stdout
    # the batch-all hinge with a Euclidean distance: what the example implements; the
    # memory fixtures are n/a too (it does not claim the optional feature)
    fixtures, everything = load_fixtures(), load_fixtures(with_optional=True)
    hinge = [
        f
        for f in fixtures
        if f["loss"]["name"] == "batch_all"
        and not f["loss"].get("soft")
        and f["loss"]["distance"] != "cosine"
    ]
    others = len(everything) - len(hinge)
    assert f"\n{len(everything)} fixtures x 1 backends: {others} n/a, {len(hinge)} ok\n" in (
        proc.stdout)
    assert (f"n/a my-loss ({len(fixtures) - len(hinge)} fixtures): my-loss implements the "
            "batch-all hinge") in proc.stdout
    # and the fresh cases of its two variants (Euclidean and squared), drawn for this run
    core, memory = default_fresh(everything)
    ran = len({loss_variant(f) for f in hinge})
    assert ran == 2
    assert fresh_line(proc.stdout)[:3] == (core + memory, 1, f"{core + memory - ran} n/a, {ran} ok")
    assert re.search(r"^fresh:batch_all_squared\s+ok ", proc.stdout, flags=re.M), proc.stdout


def test_its_wrong_twin_fails_with_a_readable_report(run_conformance, tmp_path):
    proc = run_conformance("--adapter", "plugin_example:MyWrongLoss", cwd=tmp_path, path=[HERE])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # the matrix marks the fixtures, and the failure names the output and both numbers
    assert re.search(r"seed_c_program\s+FAIL ", proc.stdout), proc.stdout
    assert "my-wrong-loss / seed_c_program: FAIL" in proc.stdout
    # the seed case has 115 active triples of 172 valid ones; the twin divides by 172
    match = re.search(r"float64/vectorized: loss (\S+) vs 0.2701464893288932: error", proc.stdout)
    assert match and float(match.group(1)) == pytest.approx(0.2701464893288932 * 115 / 172)
    # fixtures where every valid triple is active (or none is) still pass: the bug is
    # invisible there, which the matrix shows too
    assert re.search(r"batch_size_1\s+ok ", proc.stdout)


def test_progress_names_backend_and_fixture_on_stderr(run_conformance, tmp_path):
    proc = run_conformance("--adapter", "plugin_example:MyLoss", "--fixture", "seed_c_program",
                      cwd=tmp_path, path=[HERE])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    # the fixture, then the fresh case of its loss (the batch-all hinge, Euclidean)
    seed = fresh_line(proc.stdout)[3]
    assert lines[0] == f"1 fresh cases, seed {seed} (--fresh-seed {seed} draws them again)"
    assert "[1/1] my-loss: preparing 2 cases (0 n/a)" in lines
    assert "[1/1] my-loss: fixture 1/2 seed_c_program" in lines
    assert "[1/1] my-loss: fixture 2/2 fresh:batch_all_euclidean" in lines
    assert any(re.fullmatch(r"\[1/1\] my-loss: 1 ok; fresh cases: 1 ok in \d+\.\d s", line)
               for line in lines)
    quiet = run_conformance("--adapter", "plugin_example:MyLoss", "-q", "--fixture",
                       "seed_c_program", cwd=tmp_path, path=[HERE])
    assert quiet.returncode == 0 and quiet.stderr == ""


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("plugin_example", "expects 'package.module:Name'"),
        ("no_such_module_xyz:A", "cannot import 'no_such_module_xyz'"),
        ("plugin_example:Nope", "'plugin_example' has no 'Nope'"),
        ("plugin_example:my_batch_all_loss", "not an adapter"),
    ],
)
def test_a_bad_adapter_spec_is_named(spec, message, monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    with pytest.raises(ValueError, match=re.escape(message)):
        load_adapter(spec)


def test_a_malformed_adapter_spec_is_a_usage_error(run_conformance, tmp_path):
    proc = run_conformance("--adapter", "plugin_example", cwd=tmp_path, path=[HERE])
    assert proc.returncode == 2 and "expects 'package.module:Name'" in proc.stderr


def test_an_adapter_that_cannot_be_imported_fails_the_run_and_the_others_go_on(
    run_conformance, tmp_path
):
    proc = run_conformance("--adapter", "no_such_module_xyz:A", "--backend", "numpy", "-q",
                           "--fixture", "seed_c_program", cwd=tmp_path, path=[HERE])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no_such_module_xyz:A: FAILED: could not be loaded: cannot import" in proc.stdout
    assert re.search(r"seed_c_program\s+ok ", proc.stdout), proc.stdout  # numpy still ran


def test_docs_show_the_tested_example():
    """docs/conformance.md's worked example is this folder's plugin_example.py, verbatim."""
    doc = (REPO / "docs" / "conformance.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    source = (HERE / "plugin_example.py").read_text()
    assert source in blocks, "docs/conformance.md must quote tests/conformance/plugin_example.py"


def test_an_installed_package_offers_its_adapter_through_the_entry_point(tmp_path):
    """A distribution registering ``tftriplet_conformance.adapters`` needs no --adapter."""
    info = tmp_path / "site" / "my_loss_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-loss-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[tftriplet_conformance.adapters]\nmy-loss = plugin_example:MyLoss\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(info.parent), str(HERE), str(REPO)])}
    args = ["--backend", "my-loss", "--fixture", "seed_c_program", "-q"]
    proc = subprocess.run(
        [sys.executable, "-m", "tftriplet_conformance", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"seed_c_program\s+ok ", proc.stdout), proc.stdout
