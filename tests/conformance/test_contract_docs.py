"""The numbers and names the contract's prose states come from the data: the fixture counts
of docs/conformance.md, the default tolerances and the `printed` format of
conformance/README.md, and every fixture the prose names exists."""

from __future__ import annotations

import re
from pathlib import Path

from tftriplet_conformance.adapters import own_adapters
from tftriplet_conformance.fixtures import load_fixtures
from tftriplet_conformance.tolerances import BACKEND_OVERRIDES, DEFAULTS, FIELDS

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "conformance" / "README.md").read_text()
DOCS = (REPO / "docs" / "conformance.md").read_text()
FIXTURES = load_fixtures()
BY_NAME = {f["name"]: f for f in FIXTURES}


def _number(pattern, text):
    match = re.search(pattern, text)
    assert match, f"docs/conformance.md no longer says {pattern!r}"
    return int(match.group(1))


def _c_program_hinge(fixture):
    loss = fixture["loss"]
    return loss["name"] == "batch_all" and not loss.get("soft") and loss["distance"] != "cosine"


def test_the_fixture_counts_in_the_docs_are_the_folders():
    hinge = sum(map(_c_program_hinge, FIXTURES))
    stated = (
        _number(r"holds (\d+) golden cases", DOCS),
        _number(r"(\d+) cover the batch-all hinge", DOCS),
        _number(r"(\d+)\s+cover every other option", DOCS),
    )
    assert stated == (len(FIXTURES), hinge, len(FIXTURES) - hinge)


def test_the_optional_fixture_count_in_the_docs_is_the_folders():
    optional_fixtures = load_fixtures(with_optional=True)[len(FIXTURES):]
    stated = _number(r"`conformance/fixtures/optional/memory/` holds (\d+) cases", DOCS)
    assert stated == len(optional_fixtures) > 0
    assert {f["feature"] for f in optional_fixtures} == {"memory"}


def test_the_default_tolerances_in_the_readme_are_the_runners():
    rows = re.findall(r"^ *\| (float64|float32|float16|bfloat16) \|(.*)\|$", README, re.M)
    table = {
        dtype: dict(zip(FIELDS, (float(cell) for cell in cells.split("|")), strict=True))
        for dtype, cells in rows
    }
    assert table == {dtype: {k: float(v) for k, v in d.items()} for dtype, d in DEFAULTS.items()}


def test_only_tftriplets_own_backends_have_tolerance_overrides():
    """The README tells outside implementers they are held to the defaults and the cases'."""
    assert set(BACKEND_OVERRIDES) <= {adapter.name for adapter in own_adapters()}


def test_the_printed_format_in_the_readme_makes_the_seed_programs_line():
    stated = re.search(r"\(`(\{loss:f\})` and\s+`(\{fraction_positive:f\})`", README)
    assert stated, "the README no longer gives the printed line's Python format"
    expected = BY_NAME["seed_c_program"]["expected"]
    line = f"The triplet loss is {stated.group(1)} with positives {stated.group(2)}"
    assert line.format(**expected) == expected["printed"]
    assert [f["name"] for f in FIXTURES if "printed" in f["expected"]] == ["seed_c_program"]


def test_every_fixture_the_readme_names_exists():
    lists = re.findall(r"fixtures?\s+((?:`[a-z0-9_]+`(?:,\s+|\s+and\s+)?)+)", README)
    named = {name for found in lists for name in re.findall(r"`([a-z0-9_]+)`", found)}
    assert named, "no fixture named: the pattern is stale"
    assert named <= set(BY_NAME), sorted(named - set(BY_NAME))
