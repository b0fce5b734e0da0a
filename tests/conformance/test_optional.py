"""The optional feature `memory`: its fixtures, its schema, and a runner that cannot be fooled.

The fixtures are checked against what they claim to pin: every step's gradient against
float64 finite differences of the pooled reference, entries evicted, the memory changing
the outputs. The runner gives them only to adapters that claim the feature, holds those
to every step, and fails an adapter that claims the feature and skips it in any way.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from tftriplet_conformance import SCHEMA_PATH, optional, reference
from tftriplet_conformance.adapters import Unsupported
from tftriplet_conformance.adapters.numpy import NumpyAdapter
from tftriplet_conformance.adapters.process import ProcessAdapter
from tftriplet_conformance.cases import OPTIONAL_CASES
from tftriplet_conformance.errors import UsageError
from tftriplet_conformance.fixtures import (
    fixture_paths,
    load_fixture,
    load_fixtures,
    validate,
)
from tftriplet_conformance.runner import FAIL, NA, PASS, run
from tftriplet_conformance.variants import options_of, variant_of

HERE = Path(__file__).resolve().parent
ALL = load_fixtures(with_optional=True)
MEMORY = [f for f in ALL if optional.feature_of(f) == "memory"]
CORE = [f for f in ALL if optional.feature_of(f) is None]
TWO = MEMORY[:1] + [f for f in CORE if f["name"] == "batch_hard_b8_d4_c3"]


def test_the_memory_fixtures_are_the_generators_cases():
    assert sorted(f["name"] for f in MEMORY) == sorted(OPTIONAL_CASES["memory"])
    assert len(MEMORY) >= 8
    assert {f["loss"]["name"] for f in MEMORY} == {"batch_all", "batch_hard", "semi_hard"}
    assert any(f["memory"]["warmup"] for f in MEMORY)
    assert any(f["memory"]["size"] < len(f["inputs"]["steps"][0]["labels"]) for f in MEMORY)


@pytest.mark.parametrize("path", fixture_paths(with_optional=True)[len(CORE):],
                         ids=lambda p: p.stem)
def test_a_memory_fixture_is_valid_and_named_after_its_file(path):
    fixture = load_fixture(path)
    validate(fixture)
    assert fixture["name"] == path.stem and path.parent == optional.folder("memory")
    assert OPTIONAL_CASES["memory"][path.stem].where == fixture["provenance"]["generator"]
    steps, expected = fixture["inputs"]["steps"], fixture["expected"]["steps"]
    assert len(steps) == len(expected)
    for inputs, outputs in zip(steps, expected, strict=True):
        assert np.shape(outputs["gradient"]) == np.shape(inputs["embeddings"])


def test_each_schema_refuses_the_other_kind_of_fixture():
    core_schema = json.loads(SCHEMA_PATH.read_text())
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        validate(MEMORY[0], core_schema)
    with pytest.raises(jsonschema.ValidationError):
        optional.validate_feature({**CORE[0], "feature": "memory"})
    with pytest.raises(jsonschema.ValidationError):  # without its feature: a core fixture
        validate({k: v for k, v in MEMORY[0].items() if k != "feature"})
    broken = copy.deepcopy(MEMORY[0])
    broken["memory"]["size"] = 0
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    broken = copy.deepcopy(MEMORY[0])
    del broken["expected"]["steps"][1]["num_positive"]
    with pytest.raises(jsonschema.ValidationError, match="'num_positive' is a required"):
        validate(broken)


def _pooled(fixture, index, embeddings):
    """The reference's step `index` with that batch's embeddings replaced."""
    steps = [(s["labels"], s["embeddings"]) for s in fixture["inputs"]["steps"]]
    steps[index] = (steps[index][0], embeddings)
    options = options_of(fixture["loss"])
    name = options.pop("name")
    memory = fixture["memory"]
    labeled = [(np.array(labels, np.int64), rows) for labels, rows in steps[: index + 1]]
    return reference.memory_steps(labeled, memory["size"], memory["warmup"], name,
                                  **options)[index]


@pytest.mark.parametrize("fixture", MEMORY, ids=lambda f: f["name"])
def test_every_steps_gradient_is_the_finite_difference_of_the_pooled_reference(fixture):
    for index, expected in enumerate(fixture["expected"]["steps"]):
        embeddings = np.array(fixture["inputs"]["steps"][index]["embeddings"])
        numeric = reference.finite_difference_gradient(
            lambda e, i=index: _pooled(fixture, i, e)["loss"], embeddings
        )
        np.testing.assert_allclose(expected["gradient"], numeric, atol=1e-6, err_msg=index)


@pytest.mark.parametrize("fixture", MEMORY, ids=lambda f: f["name"])
def test_every_fixture_evicts_and_its_memory_changes_a_loss(fixture):
    steps, memory = fixture["inputs"]["steps"], fixture["memory"]
    entered = sum(len(s["labels"]) for s in steps[memory["warmup"]:])
    assert entered > memory["size"], "the stream must be longer than the memory"
    variant = variant_of(fixture)
    alone = [variant.reference(np.array(s["labels"]), s["embeddings"], fixture["loss"])["loss"]
             for s in steps]
    expected = [s["loss"] for s in fixture["expected"]["steps"]]
    assert not np.allclose(alone, expected), "an implementation ignoring the memory must fail"
    # the warm-up steps are the batches alone
    np.testing.assert_allclose(expected[: memory["warmup"] + 1],
                               alone[: memory["warmup"] + 1], rtol=1e-12)


# ------------------------------------------------------------------------ the runner


class Claims(NumpyAdapter):
    """The reference, claiming the memory: it passes."""

    name = "claims"


class Declines(NumpyAdapter):
    name = "declines"
    features = ()


def _alone(fixture):
    """Each batch computed alone: what an implementation that forgets its memory gives."""
    numpy = NumpyAdapter()
    return {"steps": [numpy.run({**fixture, "feature": None, "inputs": step}, "float64")["loops"]
                      for step in fixture["inputs"]["steps"]]}


def _fault(name, **attributes):
    return type(name, (Claims,), {"name": name.lower(), **attributes})


def _steps_run(transform):
    def run_fn(self, fixture, dtype):
        if optional.feature_of(fixture) is None:
            return NumpyAdapter.run(self, fixture, dtype)
        return {"m": transform(fixture, NumpyAdapter.run(self, fixture, dtype)["loops"])}
    return run_fn


class RaisesUnsupported(Claims):
    name = "raisesunsupported"

    def run(self, fixture, dtype):
        if optional.feature_of(fixture) is not None:
            raise Unsupported("not today")
        return super().run(fixture, dtype)


SKIPPERS = [
    (_fault("Forgets", run=_steps_run(lambda f, out: _alone(f))), "step 1: loss"),
    (_fault("FewerSteps", run=_steps_run(lambda f, out: {"steps": out["steps"][:-1]})),
     "steps (and keys ['steps']) for a memory fixture of"),
    (_fault("FlatOutputs", run=_steps_run(lambda f, out: out["steps"][0])),
     "for a memory fixture: expected {'steps'"),
    (_fault("SupportsNone", supports=lambda self, f: (optional.feature_of(f) is None, "no")),
     "claims the optional feature 'memory'"),
    (RaisesUnsupported, "but ran none of its 1 fixtures: not today"),
]


@pytest.mark.parametrize("adapter, message", SKIPPERS, ids=lambda x: getattr(x, "name", ""))
def test_an_adapter_that_claims_the_memory_cannot_skip_it(adapter, message):
    outcome = run(TWO, [adapter()], required=True)
    cell = outcome.matrix[adapter.name][MEMORY[0]["name"]]
    assert outcome.failed and cell.status == FAIL, cell
    assert any(message in detail for detail in cell.details), cell.details


def test_an_adapter_that_does_not_claim_it_gets_n_a_and_passes():
    outcome = run(TWO, [Declines(), Claims()], required=True)
    assert not outcome.failed
    cell = outcome.matrix["declines"][MEMORY[0]["name"]]
    assert cell.status == NA and "not claimed" in cell.details[0]
    assert outcome.matrix["claims"][MEMORY[0]["name"]].status == PASS


def test_an_unknown_feature_is_the_adapters_fault():
    outcome = run(TWO, [_fault("Dreams", features=("telepathy",))()], required=True)
    assert "features names 'telepathy'" in outcome.broken["dreams"]


def test_a_process_claims_the_memory_in_its_started_reply():
    fake = HERE / "fake_process.py"
    good = ProcessAdapter([sys.executable, str(fake), "memory"], name="memory")
    alone = ProcessAdapter([sys.executable, str(fake), "memory-alone"], name="alone")
    silent = ProcessAdapter([sys.executable, str(fake), "none"], name="silent")
    outcome = run(TWO, [good, alone, silent], required=True)
    name = MEMORY[0]["name"]
    assert outcome.matrix["memory"][name].status == PASS
    assert outcome.matrix["alone"][name].status == FAIL
    assert outcome.matrix["silent"][name].status == NA


def test_a_fixture_outside_its_features_folder_is_refused(tmp_path):
    (tmp_path / f"{MEMORY[0]['name']}.json").write_text(json.dumps(MEMORY[0]))
    with pytest.raises(UsageError, match="has feature 'memory' but lies in the folder of the"):
        load_fixtures(tmp_path)
    folder = optional.folder("memory", tmp_path / "other")
    folder.mkdir(parents=True)
    (tmp_path / "other" / f"{CORE[0]['name']}.json").write_text(json.dumps(CORE[0]))
    (folder / f"{CORE[1]['name']}.json").write_text(json.dumps(CORE[1]))
    with pytest.raises(UsageError, match="has feature None but lies in the folder of the "
                                         "optional feature 'memory'"):
        load_fixtures(tmp_path / "other", with_optional=True)
