"""The fixtures themselves: schema, names, provenance, drift, and that the runner can fail."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from finite_differences import assert_gradient_is_the_finite_difference

from tftriplet_conformance import FIXTURES_DIR
from tftriplet_conformance.adapters import backend_names
from tftriplet_conformance.adapters.numpy import NumpyAdapter
from tftriplet_conformance.cases import CASES
from tftriplet_conformance.expected_failures import EXPECTED_FAILURES, ExpectedFailure
from tftriplet_conformance.fixtures import (
    dumps,
    fixture_paths,
    load_fixture,
    load_fixtures,
    validate,
)
from tftriplet_conformance.generate import check_drift, write_fixtures
from tftriplet_conformance.runner import XPASS, check_run, failed, run_backend

REPO = Path(__file__).resolve().parents[2]
FIXTURES = load_fixtures()
BY_NAME = {f["name"]: f for f in FIXTURES}


@pytest.mark.parametrize("path", fixture_paths(), ids=lambda p: p.stem)
def test_fixture_is_valid_and_named_after_its_file(path):
    fixture = load_fixture(path)
    validate(fixture)
    assert fixture["name"] == path.stem
    assert fixture["provenance"]["generator"] == CASES[path.stem].where
    b = len(fixture["inputs"]["labels"])
    assert len(fixture["inputs"]["embeddings"]) == b
    assert len({len(row) for row in fixture["inputs"]["embeddings"]}) == 1
    assert np.shape(fixture["expected"]["gradient"]) == np.shape(fixture["inputs"]["embeddings"])
    # one line, short: the matrix and the test ids show it
    assert "\n" not in fixture["description"] and len(fixture["description"]) <= 100


def test_names_and_descriptions_are_unique():
    names = [f["name"] for f in FIXTURES]
    assert len(names) == len(set(names))
    descriptions = [f["description"] for f in FIXTURES]
    assert len(descriptions) == len(set(descriptions))
    assert sorted(names) == sorted(CASES)


def _resolve(where):
    """The object a provenance `generator` names: `module.function` or
    `module.TABLE['name']`."""
    import ast
    import importlib

    path, _, key = where.partition("[")
    module, _, attribute = path.rpartition(".")
    found = getattr(importlib.import_module(module), attribute)
    return found[ast.literal_eval(key.removesuffix("]"))] if key else found


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f["name"])
def test_the_generator_named_in_the_provenance_exists_and_makes_the_case(fixture):
    found = _resolve(fixture["provenance"]["generator"])
    make = CASES[fixture["name"]].make
    # a case function itself, or the table's record its builder was given
    assert found is make or getattr(make, "args", None) == (found,)


def test_the_suite_covers_what_issue_3_lists():
    assert len(FIXTURES) >= 30
    sizes = [len(f["inputs"]["labels"]) for f in FIXTURES]
    dims = [len(f["inputs"]["embeddings"][0]) for f in FIXTURES]
    assert min(sizes) == 1 and max(sizes) == 128 and min(dims) == 1 and max(dims) == 256
    distances = {f["loss"]["distance"] for f in FIXTURES}
    assert distances == {"euclidean", "squared_euclidean", "cosine"}
    classes = {len(set(f["inputs"]["labels"])) / len(f["inputs"]["labels"]) for f in FIXTURES}
    assert 1.0 in classes  # all labels distinct
    labels = [x for f in FIXTURES for x in f["inputs"]["labels"]]
    assert {2**24, 2**24 + 1, 2**40 + 3} <= set(labels) and min(labels) < 0
    assert any(f["expected"].get("num_valid") == 0 for f in FIXTURES)
    random = [f for f in FIXTURES if f["name"].startswith("random_")]
    assert len(random) >= 15 and all(f["numerics"]["tie_clear"] for f in random)


#: (strategy, distance, soft) combinations issue 5 asks for, each with tie-clear random cases
ISSUE_5_OPTIONS = [
    *[("batch_hard", d, s) for d in ("euclidean", "squared_euclidean", "cosine") for s in (0, 1)],
    *[("semi_hard", d, False) for d in ("euclidean", "squared_euclidean", "cosine")],
    *[("batch_all", d, True) for d in ("euclidean", "squared_euclidean", "cosine")],
    ("batch_all", "cosine", False),
]


def _options(fixture):
    loss = fixture["loss"]
    return loss["name"], loss["distance"], bool(loss.get("soft", False))


@pytest.mark.parametrize("option", ISSUE_5_OPTIONS, ids=lambda o: "-".join(map(str, o)))
def test_every_issue_5_option_has_tie_clear_random_fixtures(option):
    found = [f for f in FIXTURES if _options(f) == (option[0], option[1], bool(option[2]))]
    clear = [f for f in found if f["numerics"]["tie_clear"] and "seed" in f["provenance"]]
    assert clear, f"no tie-clear random fixture for {option}"
    # some hinges active and some not, so the cases decide something
    assert any(0 < f["expected"]["num_positive"] for f in clear)


def test_issue_5_edge_cases_are_covered():
    mining = [f for f in FIXTURES if f["loss"]["name"] != "batch_all"]
    # anchors without a positive are excluded, not counted as zero terms
    excluded = [
        f
        for f in mining
        if f["loss"]["name"] == "batch_hard"
        and 0 < f["expected"]["num_anchors"] < len(f["inputs"]["labels"])
    ]
    assert excluded
    # nothing left: loss 0 and gradient 0, for batch-hard (hinge and soft) and semi-hard
    empty = {
        _options(f)[::2]
        for f in FIXTURES
        if f["expected"]["loss"] == 0.0
        and not np.any(f["expected"]["gradient"])
        and f["expected"].get("num_anchors", f["expected"].get("num_pairs", -1)) == 0
    }
    assert {("batch_hard", False), ("batch_hard", True), ("semi_hard", False)} <= empty
    # a zero row under cosine, for every strategy
    zero_row = {
        f["loss"]["name"]
        for f in FIXTURES
        if f["loss"]["distance"] == "cosine"
        and any(not np.any(row) for row in f["inputs"]["embeddings"])
    }
    assert zero_row == {"batch_all", "batch_hard", "semi_hard"}
    # soft margin at |x| >= 1e3 (exp overflows float64 there), with finite golden values
    huge = [f for f in FIXTURES if f["loss"].get("soft") and f["expected"]["loss"] > 1e3]
    assert {f["loss"]["name"] for f in huge} == {"batch_all", "batch_hard"}


def test_fixture_folder_stays_small():
    total = sum(p.stat().st_size for p in fixture_paths())
    assert total < 1_000_000, f"fixtures take {total} bytes; use a smaller D for a big B"


def test_seed_case_records_the_c_programs_line():
    seed = BY_NAME["seed_c_program"]
    assert seed["expected"]["printed"] == "The triplet loss is 0.270146 with positives 0.668605"
    assert (seed["expected"]["num_positive"], seed["expected"]["num_valid"]) == (115, 172)
    # glibc rand() after the default srand(1): 1804289383 (label 1804289383 % 3), 846930886, ...
    assert seed["inputs"]["labels"][0] == 1804289383 % 3
    assert seed["inputs"]["embeddings"][0][0] == 846930886 / 2147483647


def test_floats_round_trip_through_the_files():
    for path in fixture_paths()[:5]:
        fixture = load_fixture(path)
        assert json.loads(dumps(fixture)) == fixture


def test_no_drift_between_generator_and_fixtures(tmp_path, run_conformance):
    """Regenerate into a temporary folder and compare with the committed fixtures; the
    drift check from the command line (`generate --check`) finds no difference."""
    assert write_fixtures(tmp_path, log=lambda line: None) == 0
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [p.name for p in fixture_paths()]
    written = [p.relative_to(tmp_path) for p in fixture_paths(tmp_path, with_optional=True)]
    assert written == [p.relative_to(FIXTURES_DIR) for p in fixture_paths(with_optional=True)]
    check = run_conformance("generate", "--check", "--out", str(FIXTURES_DIR))
    assert check.returncode == 0 and check.stdout.startswith("0 difference(s)"), (
        check.stdout + check.stderr
    )


def test_the_drift_check_reports_a_changed_fixture(tmp_path):
    shutil.copytree(FIXTURES_DIR, tmp_path, dirs_exist_ok=True)  # the optional ones too
    _copy_with_changed_loss(tmp_path)
    memory = tmp_path / "optional" / "memory" / "memory_batch_hard_n10.json"
    changed = load_fixture(memory)
    changed["expected"]["steps"][2]["num_positive"] += 1
    memory.write_text(dumps(changed))
    problems = check_drift(tmp_path, log=lambda line: None)
    assert problems == [
        "random_b5_d7_c3_squared.json: expected.loss: "
        f"{BY_NAME['random_b5_d7_c3_squared']['expected']['loss'] * (1 + 1e-6)!r} -> "
        f"{BY_NAME['random_b5_d7_c3_squared']['expected']['loss']!r}",
        "optional/memory/memory_batch_hard_n10.json: expected.steps[2].num_positive: "
        f"{changed['expected']['steps'][2]['num_positive']} -> "
        f"{changed['expected']['steps'][2]['num_positive'] - 1}",
    ]


def _copy_with_changed_loss(tmp_path, name="random_b5_d7_c3_squared", factor=1.0 + 1e-6):
    fixture = load_fixture(FIXTURES_DIR / f"{name}.json")
    fixture["expected"]["loss"] *= factor
    (tmp_path / f"{name}.json").write_text(dumps(fixture))
    return fixture


def test_generate_refuses_to_change_a_golden_value_without_force(tmp_path):
    changed = _copy_with_changed_loss(tmp_path)
    lines = []
    refused = write_fixtures(tmp_path, names=[changed["name"]], log=lines.append)
    assert refused == 1
    assert any("expected.loss" in line for line in lines), lines
    assert load_fixture(tmp_path / f"{changed['name']}.json") == changed  # untouched
    assert write_fixtures(tmp_path, force=True, names=[changed["name"]], log=lines.append) == 0
    assert load_fixture(tmp_path / f"{changed['name']}.json") == BY_NAME[changed["name"]]


def test_force_rewrites_what_changed_and_keeps_every_last_bit_of_the_rest(tmp_path):
    """A forced rewrite (say, of a provenance string) keeps the golden floats on disk that
    agree with the regenerated ones to the drift tolerance, bit for bit."""
    name = "random_b5_d7_c3_squared"
    fixture = load_fixture(FIXTURES_DIR / f"{name}.json")
    fixture["provenance"]["generator"] = "somewhere.else"
    nudged = math.nextafter(fixture["expected"]["gradient"][0][0], math.inf)
    fixture["expected"]["gradient"][0][0] = nudged
    (tmp_path / f"{name}.json").write_text(dumps(fixture))
    assert write_fixtures(tmp_path, force=True, names=[name], log=lambda line: None) == 0
    rewritten = load_fixture(tmp_path / f"{name}.json")
    assert rewritten["provenance"] == BY_NAME[name]["provenance"]
    assert rewritten["expected"]["gradient"][0][0] == nudged
    assert rewritten == {**fixture, "provenance": BY_NAME[name]["provenance"]}


def test_changing_one_golden_number_makes_the_runner_fail(run_conformance, tmp_path):
    shutil.copy(FIXTURES_DIR / "random_b3_d2_c2.json", tmp_path)
    ok = run_conformance("--backend", "numpy", "--fixtures", str(tmp_path))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    _copy_with_changed_loss(tmp_path)
    bad = run_conformance("--backend", "numpy", "--fixtures", str(tmp_path))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL" in bad.stdout and "random_b5_d7_c3_squared" in bad.stdout


def test_an_unexpected_pass_is_an_error():
    fixture = BY_NAME["random_b3_d2_c2"]
    adapter = NumpyAdapter()
    entry = ExpectedFailure("numpy", fixture["name"], reason="pretend it fails")
    outputs = adapter.run(fixture, "float64")["loops"]
    check = check_run(fixture, adapter, "float64", "loops", outputs, [entry])
    assert check.status == XPASS and "pretend it fails" in check.details[0]
    assert failed({"numpy": run_backend(adapter, [fixture], [entry])})


def test_expected_failures_name_real_backends_and_fixtures_with_reasons():
    for entry in EXPECTED_FAILURES:
        assert entry.backend in backend_names(), entry
        assert any(entry.matches(entry.backend, n, entry.dtype, entry.mode) for n in BY_NAME)
        assert len(entry.reason) > 20, entry


@pytest.mark.parametrize(
    "fixture",
    [f for f in FIXTURES if f["numerics"]["tie_clear"] and len(f["inputs"]["labels"]) <= 24],
    ids=lambda f: f["name"],
)
def test_golden_gradient_matches_finite_differences(fixture):
    """The golden gradients come from the loop reference; check them independently."""
    assert_gradient_is_the_finite_difference(fixture)


def test_c_backend_reproduces_the_seed_programs_line():
    from tftriplet_conformance.adapters.c import CAdapter

    adapter = CAdapter()
    ok, reason = adapter.available()
    if not ok:
        pytest.skip(reason)
    runs = adapter.run(BY_NAME["seed_c_program"], "float64")
    line = "The triplet loss is 0.270146 with positives 0.668605"
    assert runs["triplet.c"]["printed"].rstrip() == line
    if "seed_program.c" in runs:  # glibc only: its rand() draws the fixture's inputs
        assert runs["seed_program.c"]["printed"] == line
    assert math.isclose(
        runs["triplet.c"]["loss"], BY_NAME["seed_c_program"]["expected"]["loss"], rel_tol=1e-12
    )


def test_a_duplicate_case_name_is_an_error():
    from tftriplet_conformance.cases import case

    def seed_c_program():
        return {}

    with pytest.raises(ValueError, match="duplicate conformance case name 'seed_c_program'"):
        case(seed_c_program)


def test_a_named_backend_that_is_not_available_fails_the_run(tmp_path):
    shutil.copy(FIXTURES_DIR / "random_b3_d2_c2.json", tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "CC": "no-such-compiler-xyz"}
    args = [sys.executable, "-m", "tftriplet_conformance", "--backend", "c"]
    args += ["--fixtures", str(tmp_path)]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    reason = "no C compiler ('no-such-compiler-xyz' not on PATH)"
    assert f"c: FAILED: was asked for but is not available: {reason}" in proc.stdout


def _decision_values_by_loops(labels, embeddings, strategy, margin, distance):
    """The definition of the decision values, one by one (an independent check)."""
    from tftriplet_conformance import reference

    d = reference.distance_matrix(embeddings, distance)
    b = len(labels)
    values = [
        d[i, j] - d[i, k] + margin
        for i in range(b)
        for j in range(b)
        for k in range(b)
        if j != i and labels[j] == labels[i] and labels[k] != labels[i]
    ]
    for i in range(b):
        others = [a for a in range(b) if a != i]
        if strategy in ("batch_hard", "semi_hard"):
            values += [d[i, a] - d[i, c] for a in others for c in others if a < c]
        if distance == "euclidean":
            values += [d[i, a] for a in others]
    return np.asarray(values, dtype=np.float64)


@pytest.mark.parametrize(
    "fixture",
    [f for f in FIXTURES if f["loss"]["name"] != "batch_all"][:6],
    ids=lambda f: f["name"],
)
def test_mining_decisions_are_the_definitions_decision_values(fixture):
    """The generator's vectorized tie check sees the same values as the loops define."""
    from tftriplet_conformance.variants import options_of, variant_of

    labels = np.array(fixture["inputs"]["labels"], dtype=np.int64)
    embeddings = fixture["inputs"]["embeddings"]
    mine = variant_of(fixture).decisions(labels, embeddings, fixture["loss"])
    options = options_of(fixture["loss"])
    options.pop("soft")
    loops = _decision_values_by_loops(labels, embeddings, options.pop("name"), **options)
    np.testing.assert_array_equal(np.sort(mine), np.sort(loops))


def test_c_backend_declares_the_variants_it_lacks():
    """``supports`` and triplet.c's own 'unsupported' replies (process protocol) agree."""
    from tftriplet_conformance.adapters import Unsupported
    from tftriplet_conformance.adapters.c import CAdapter

    adapter = CAdapter()
    if not adapter.available()[0]:
        pytest.skip(adapter.available()[1])
    for fixture in FIXTURES:
        ok, reason = adapter.supports(fixture)
        name, distance, soft = _options(fixture)
        core = name == "batch_all" and not soft and distance != "cosine"
        assert ok == core, fixture["name"]
        if ok:
            assert "loss" in adapter.run(fixture, "float64")["triplet.c"], fixture["name"]
            continue
        assert ("soft" in reason) or (name in reason) or (distance in reason), reason
        with pytest.raises(Unsupported) as answer:
            adapter.run(fixture, "float64")
        assert str(answer.value) == reason
    adapter.close()


@pytest.mark.parametrize(
    "change",
    [
        {"loss": {"soft": True}},
        {"loss": {"name": "no_such_loss"}},
        {"hints": {"method": "sorted"}},  # hints are batch-all's
        {"loss": {"method": "sorted"}},  # a hint is not part of the loss
    ],
    ids=["soft", "name", "hints", "method-in-loss"],
)
def test_schema_rejects_what_semi_hard_does_not_have(change):
    import jsonschema

    fixture = json.loads(json.dumps(BY_NAME["semi_hard_b8_d4_c3"]))
    validate(fixture)
    for key, value in change.items():
        fixture.setdefault(key, {}).update(value)
    with pytest.raises(jsonschema.ValidationError):
        validate(fixture)


@pytest.mark.parametrize(
    "hints", [{}, {"method": "fast"}, {"anchor_block": 0}, {"row_sort": "merged"}]
)
def test_schema_rejects_unknown_or_empty_hints(hints):
    import jsonschema

    fixture = json.loads(json.dumps(BY_NAME["batch_all_sorted_one_class"]))
    validate(fixture)
    fixture["hints"] = hints
    with pytest.raises(jsonschema.ValidationError):
        validate(fixture)


def test_hints_reach_the_keras_loss():
    """tftriplet's own backends honour `hints` (every other implementation may ignore it)."""
    from tftriplet_conformance.variants import keras_callables

    hinted = [f for f in FIXTURES if "hints" in f]
    assert {key for f in hinted for key in f["hints"]} == {"method", "anchor_block"}
    for fixture in hinted:
        loss_fn, _ = keras_callables(fixture, "float32")
        config = loss_fn.get_config()
        assert {k: config[k] for k in fixture["hints"]} == fixture["hints"], fixture["name"]
