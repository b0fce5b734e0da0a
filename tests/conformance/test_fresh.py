"""Fresh cases: every run also draws cases no file holds, so that an implementation that
looks the golden files up instead of computing (cheats.py, each a different dodge) fails,
while the float64 reference, the documented plugin and a process implementation pass."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cheats
import pytest
from finite_differences import assert_gradient_is_the_finite_difference, has_distinct_rows
from fresh_expect import SESSION_SEED, default_fresh, fresh_line, loss_variant

from tftriplet_conformance.adapters.numpy import NumpyAdapter
from tftriplet_conformance.adapters.process import ProcessAdapter
from tftriplet_conformance.differs import Difference
from tftriplet_conformance.errors import UsageError
from tftriplet_conformance.fixtures import load_fixtures, validate
from tftriplet_conformance.fresh import Fresh, draw
from tftriplet_conformance.generate import TIE_CLEARANCE
from tftriplet_conformance.report import render
from tftriplet_conformance.runner import DIFFERS, FAIL, NA, PASS, run

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)])}
ALL = load_fixtures(with_optional=True)
NAMES = ["seed_c_program", "batch_hard_b8_d4_c3", "semi_hard_b8_d4_c3",
         "memory_batch_all_n10"]
SOME = [f for f in ALL if f["name"] in NAMES]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tftriplet_conformance", "-q", *args],
                          capture_output=True, text=True, env=ENV, cwd=REPO)


def _fresh_rows(stdout):
    """`{fresh case: [cell text per backend]}` from the fresh cases' table."""
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("fresh:"):
            name, *words = line.split()
            cells = []
            for word in words:  # "ok 0.02", "FAIL inf", "n/a"
                if cells and cells[-1] in ("ok", "FAIL"):
                    cells[-1] += f" {word}"
                else:
                    cells.append(word)
            rows[name] = cells
    return rows


# -- the lookup the lead found -------------------------------------------------------------


def test_the_lookup_passes_every_fixture_and_fails_every_fresh_case_by_name():
    proc = _cli("--adapter", "cheats:Cheat", "--adapter", "plugin_example:MyLoss",
                "--backend", "numpy")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    core, memory = default_fresh(ALL)
    cases, backends, counts, seed = fresh_line(proc.stdout)
    assert (cases, backends) == (core + memory, 3)
    rows = _fresh_rows(proc.stdout)  # the columns: numpy, cheat, my-loss
    failed = [name for name, cells in rows.items() if cells[1] == "FAIL inf"]
    assert failed == [name for name in rows if "memory" not in name] and len(failed) == core
    # the numpy reference passes every fresh case, the plugin those of its two variants
    assert all(cells[0].startswith("ok ") for cells in rows.values()), rows
    hinge = {f"fresh:batch_all_{d}" for d in ("euclidean", "squared")}
    assert {n for n, cells in rows.items() if cells[2].startswith("ok ")} == hinge
    # every fixture passed: only the fresh cases tell that the cheat computes nothing
    assert f"{len(ALL)} fixtures x 3 backends: " in proc.stdout
    assert not re.search(r"^[a-z]\w*\s.*FAIL", proc.stdout, flags=re.M), proc.stdout
    message = (f"  cheat: passes every fixture it ran, but fails {core} of its {core} fresh "
               f"cases (seed {seed}): {', '.join(failed)}. Its results on the fixtures do not "
               "hold on new inputs of the same losses")
    assert message in proc.stdout, proc.stdout
    assert "cheat / fresh:batch_all_euclidean, " in proc.stdout
    assert "returned None (NoneType): expected {mode: outputs}" in proc.stdout
    # the same seed draws the same cases, with the same results
    again = _cli("--adapter", "cheats:Cheat", "--adapter", "plugin_example:MyLoss",
                 "--backend", "numpy", "--fresh-seed", str(seed))
    assert _fresh_rows(again.stdout) == rows and fresh_line(again.stdout)[3] == seed


def test_without_fresh_cases_the_lookup_passes_and_the_report_says_why():
    proc = _cli("--adapter", "cheats:Cheat", "--no-fresh", "showing the hole")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.endswith(
        "\nno fresh cases (showing the hole): nothing checked that the results on the "
        "fixtures were computed, not looked up\n")
    assert "fresh:" not in proc.stdout


# -- the other dodges ----------------------------------------------------------------------


DODGES = [
    (cheats.Lookup, FAIL, "returned an error: not in the files"),
    (cheats.Zeros, FAIL, "loss 0.0 vs "),
    (cheats.Declines, FAIL, "n/a (not implemented), but the fixtures of the same loss "
     "(batch_all_euclidean: seed_c_program) ran: whether a loss is supported depends on the "
     "loss, not on its inputs"),
    (cheats.RaisesUnsupported, FAIL, "n/a (not implemented), but the fixtures of the same "
     "loss (batch_hard_euclidean: batch_hard_b8_d4_c3) ran"),
    (cheats.DiffersByName, FAIL, "lookup: differs as declared (computes another quantity "
     "there), but that declared difference applies to no golden fixture"),
    (cheats.DiffersByInputs, FAIL, "but that declared difference applies to no golden fixture"),
]


@pytest.mark.parametrize(("cls", "status", "message"), DODGES, ids=[d[0].name for d in DODGES])
def test_every_dodge_fails_the_fresh_cases_and_the_reference_passes(cls, status, message):
    outcome = run(SOME, [cls(), NumpyAdapter()], required=True)
    assert outcome.failed and not outcome.broken
    # the cheat passes every core fixture (the memory one is n/a: not claimed)...
    assert {c.status for c in outcome.matrix[cls.name].values()} == {PASS, NA}
    # ...and fails each fresh case of a loss it ran; the reference passes them all
    cells = outcome.fresh_matrix[cls.name]
    core = [name for name in cells if "memory" not in name]
    assert len(core) == 3 and {cells[n].status for n in core} == {status}
    assert any(message in d for n in core for d in cells[n].details), {
        n: cells[n].details for n in core}
    assert {c.status for c in outcome.fresh_matrix["numpy"].values()} == {PASS}


def test_a_process_that_looks_the_files_up_fails_and_one_that_computes_passes():
    fake = HERE / "fake_process.py"
    lookup = ProcessAdapter([sys.executable, str(fake), "lookup"], env=ENV)
    honest = ProcessAdapter([sys.executable, str(fake), "none"], env=ENV)
    outcome = run(SOME, [lookup, honest], required=True)
    assert {c.status for c in outcome.matrix["fake-lookup"].values()} == {PASS, NA}
    cells = outcome.fresh_matrix["fake-lookup"]
    assert {cells[n].status for n in cells if "memory" not in n} == {FAIL}
    assert "n/a (not implemented), but the fixtures of the same loss" in (
        cells["fresh:semi_hard_euclidean"].details[0])
    assert {c.status for c in outcome.fresh_matrix["fake-none"].values()} == {PASS, NA}


class _Scaled(NumpyAdapter):
    """The reference, and a second mode `scaled` that doubles the loss where declared."""

    name = "scaled"
    features = ()

    def run(self, fixture, dtype):
        exact = super().run(fixture, dtype)["loops"]
        return {"exact": exact, "scaled": {**exact, "loss": 2 * exact["loss"]}}


def test_a_declared_difference_the_fixtures_show_holds_on_fresh_cases():
    adapter = _Scaled()
    adapter.differences = (Difference("scaled", "doubles the loss", mode="scaled"),)
    outcome = run(SOME, [adapter], required=True)
    assert not outcome.failed
    cells = [c for c in outcome.fresh_matrix["scaled"].values() if c.status != NA]
    assert len(cells) == 3
    for cell in cells:
        assert cell.status == PASS and cell.modes == {"exact": PASS, "scaled": DIFFERS}


# -- the cases themselves ------------------------------------------------------------------


def test_a_seed_draws_the_same_cases_and_another_seed_others():
    first, again, other = draw(SOME, 7), draw(SOME, 7), draw(SOME, 8)
    assert first == again and first.seed == 7
    assert [f["name"] for f in first.fixtures] == [f["name"] for f in other.fixtures]
    assert all(a["inputs"] != b["inputs"] for a, b in zip(first.fixtures, other.fixtures,
                                                          strict=True))


def test_one_case_per_loss_variant_and_per_memory_strategy_by_default():
    cases = draw(ALL).fixtures
    core, memory = default_fresh(ALL)
    assert len(cases) == core + memory
    assert {loss_variant(f) for f in cases if "feature" not in f} == {
        loss_variant(f) for f in ALL if "feature" not in f}
    assert sorted(f["loss"]["name"] for f in cases if f.get("feature") == "memory") == [
        "batch_all", "batch_hard", "semi_hard"]
    names = [f["name"] for f in cases]
    assert len(set(names)) == len(names) and all(n.startswith("fresh:") for n in names)
    assert not set(names) & {f["name"] for f in ALL}
    three = draw(SOME, 3, per_variant=3).fixtures
    assert [f["name"] for f in three[:3]] == [
        "fresh:batch_all_euclidean", "fresh:batch_all_euclidean:2", "fresh:batch_all_euclidean:3"]


@pytest.mark.parametrize("seed", [11, 12])
def test_every_fresh_case_is_a_valid_tie_clear_non_trivial_fixture(seed):
    for case in draw(ALL, seed).fixtures:
        placeholder = "memory_fresh" if case.get("feature") else "fresh"
        validate({**case, "name": placeholder})
        assert case["numerics"]["tie_clear"] and set(case["tolerances"]) == {
            "float16", "bfloat16"}
        steps = case["expected"].get("steps", [case["expected"]])
        assert any(s["loss"] > 0 and s["num_positive"] > 0 for s in steps), case["name"]
        if "feature" not in case:
            assert case["numerics"]["min_abs_hinge"] >= TIE_CLEARANCE * (
                case["numerics"]["max_distance"])


@pytest.mark.parametrize("seed", [5, 6])
def test_the_expected_gradient_of_fresh_cases_is_the_finite_difference(seed):
    cases = [c for c in draw(ALL, seed).fixtures if "feature" not in c and has_distinct_rows(c)]
    assert len(cases) >= 12
    for case in cases:
        assert_gradient_is_the_finite_difference(case)


def test_fresh_cases_vary_as_the_fixtures_do():
    cases = [c for seed in range(4) for c in draw(ALL, seed).fixtures if "feature" not in c]
    sizes = {len(c["inputs"]["labels"]) for c in cases}
    assert len(sizes) > 5 and min(sizes) <= 6 and max(sizes) >= 16
    assert {c.get("hints", {}).get("method") for c in cases} == {None, "dense", "sorted"}
    assert any(c["numerics"]["max_distance"] > 100 for c in cases)  # scaled up
    assert len({c["loss"]["margin"] for c in cases}) > len(cases) // 2


# -- the command line and the API -----------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["--fresh", "0"], "argument --fresh: expected an int from 1 to 999; got '0'"),
    (["--fresh-seed", "-1"], "expected an int from 0 to 2**32 - 1; got '-1'"),
    (["--no-fresh", "why", "--fresh-seed", "3"], "--no-fresh runs no fresh case"),
    (["--no-fresh", " "], "--no-fresh needs a reason"),
])
def test_bad_fresh_options_are_usage_errors(args, message):
    proc = _cli("--backend", "numpy", "--fixture", "seed_c_program", *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_fresh_n_draws_n_per_variant():
    proc = _cli("--backend", "numpy", "--fixture", "seed_c_program", "--fresh", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(_fresh_rows(proc.stdout)) == [
        "fresh:batch_all_euclidean", "fresh:batch_all_euclidean:2", "fresh:batch_all_euclidean:3"]
    assert fresh_line(proc.stdout)[:3] == (3, 1, "3 ok")


def test_a_fixture_named_like_a_fresh_case_is_refused():
    with pytest.raises(UsageError, match="start with 'fresh:', which names the runner's"):
        run([{**SOME[0], "name": "fresh:batch_all_euclidean"}], [NumpyAdapter()])


def test_no_fresh_cases_needs_a_reason():
    with pytest.raises(ValueError, match="needs a reason"):
        Fresh.none("")


def test_the_peers_report_runs_no_fresh_case_and_is_the_same_on_every_run():
    first, second = render(SOME, [_Scaled()]), render(SOME, [_Scaled()])
    assert first == second and "fresh" not in first


# -- what docs/conformance.md says of them comes from the data --------------------------------


DOC = (REPO / "docs" / "conformance.md").read_text()


def test_the_docs_numbers_are_the_draws():
    core, memory = default_fresh(ALL)
    assert re.search(rf"soft\s+margin: {core} with every fixture\)", DOC)
    assert re.search(rf"variant of the memory fixtures \({memory}\)", DOC)
    assert re.search(rf"one fixed seed \(`{SESSION_SEED}`\)", DOC)


def test_the_docs_show_a_real_run_of_the_lookup():
    block = re.search(r"## Fresh cases.*?```text\n(.*?)```", DOC, flags=re.S).group(1)
    seed = re.search(r"\(seed (\d+):", block).group(1)
    proc = _cli("--adapter", "cheats:Cheat", "--fresh-seed", seed)
    assert proc.returncode == 1
    for line in block.splitlines():
        assert line in proc.stdout.splitlines(), line
    quoted = re.search(r"`(cheat: passes every\s+fixture it ran.*?),\s+\.\.\.`", DOC, flags=re.S)
    assert " ".join(quoted.group(1).split()) in proc.stdout
