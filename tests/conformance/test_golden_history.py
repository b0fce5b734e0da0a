"""The golden numbers of the fixtures never move: every fixture of an earlier commit still
has exactly (float for float, not within a tolerance) the same inputs, loss, expected
outputs, numerics and tolerances.

What may change is only bookkeeping: the provenance strings (where the generator lives),
and the structure that moved tftriplet's kernel hints (`method`, `anchor_block`) from the
`loss` object into `hints`. The commit is read with git; outside a git checkout that has
it (an installed wheel, a shallow clone) the test skips and says why.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "conformance" / "fixtures"

#: The last commit before the contract's clean-up (issue 18): 81 fixtures, `method` and
#: `anchor_block` still inside `loss`, provenance naming the old `conformance.cases` module.
BASELINE = "6346572e38ffbaea880340fc3ccd9a2a92b3294d"

#: The parts of a fixture that are golden: an implementation is measured against them.
GOLDEN = ("name", "description", "inputs", "expected", "numerics", "tolerances")


def _git(*args, stdin=None):
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed: the earlier fixtures cannot be read")
    proc = subprocess.run(
        [git, "-C", str(REPO), *args], input=stdin, capture_output=True, check=False
    )
    if proc.returncode != 0:
        pytest.skip(f"git {' '.join(args)}: {proc.stderr.decode().strip()}")
    return proc.stdout


def baseline_fixtures(commit=BASELINE):
    """`{name: fixture}` of the fixtures at `commit`, read with one `git cat-file --batch`."""
    names = _git("ls-tree", "--name-only", commit, "conformance/fixtures/").decode().split()
    specs = "".join(f"{commit}:{path}\n" for path in names).encode()
    out, fixtures = _git("cat-file", "--batch", stdin=specs), {}
    for _ in names:
        header, _, out = out.partition(b"\n")
        size = int(header.split()[2])
        fixture = json.loads(out[:size])
        fixtures[fixture["name"]] = fixture
        out = out[size + 1 :]
    return fixtures


@pytest.fixture(scope="module")
def baseline():
    fixtures = baseline_fixtures()
    assert len(fixtures) == 81, sorted(fixtures)
    return fixtures


def golden_changes(baseline, folder=FIXTURES):
    """What moved in `folder` relative to the `baseline` fixtures, one line each."""
    problems = []
    for name, old in baseline.items():
        path = Path(folder) / f"{name}.json"
        if not path.exists():
            problems.append(f"{name}: a golden fixture was removed")
            continue
        new = json.loads(path.read_text())
        problems += [f"{name}: {key} changed" for key in GOLDEN if new[key] != old[key]]
        # the same loss, with the hints that used to sit in it now in their own object
        if {**new["loss"], **new.get("hints", {})} != old["loss"]:
            problems.append(f"{name}: loss changed")
        if set(new) - set(old) - {"hints"}:
            problems.append(f"{name}: new fields {sorted(set(new) - set(old) - {'hints'})}")
        if new["provenance"].get("seed") != old["provenance"].get("seed"):
            problems.append(f"{name}: provenance.seed changed")
    return problems


def test_every_earlier_fixture_keeps_its_golden_numbers(baseline):
    assert golden_changes(baseline) == []


def test_the_comparison_sees_one_float_move_by_one_ulp(baseline, tmp_path):
    for path in FIXTURES.glob("*.json"):
        shutil.copy(path, tmp_path)
    name = "random_b3_d2_c2"
    fixture = json.loads((tmp_path / f"{name}.json").read_text())
    value = fixture["expected"]["gradient"][1][0]
    fixture["expected"]["gradient"][1][0] = math.nextafter(value, math.inf)
    fixture["hints"] = {"method": "dense"}  # a hint the baseline's loss did not have
    (tmp_path / f"{name}.json").write_text(json.dumps(fixture))
    (tmp_path / "one_class.json").unlink()
    assert golden_changes(baseline, tmp_path) == [
        "one_class: a golden fixture was removed",
        f"{name}: expected changed",
        f"{name}: loss changed",
    ]
