"""Optional features of the contract: fixtures that only an implementation claiming them runs.

As JSON-Schema-Test-Suite keeps its `optional/` tests apart from the required ones, a
feature that an implementation of the triplet losses need not have keeps its fixtures in
`fixtures/optional/<feature>/` and their format in `schema-<feature>.json`, and each of
its fixtures names it (`"feature": "memory"`). An adapter lists the features it claims in
`features` (a process in its `started` reply). The runner gives a feature's fixtures only
to the adapters that claim it (for the others the cells are `n/a`, saying so), holds a
claiming adapter to every step of them, and fails an adapter that claims a feature but
runs none of its fixtures.

`memory` (conformance/README.md, "Optional: the cross-batch memory"): a sequence of
batches through one loss with a cross-batch memory; the inputs and expected outputs are
lists of steps, each one a core fixture's `inputs` and `expected`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from tftriplet_conformance import CONTRACT_DIR, FIXTURES_DIR, SCHEMA_PATH

#: The optional features, each with its folder and schema.
FEATURES = ("memory",)


def feature_of(fixture):
    """The optional feature a fixture belongs to, or None for a core fixture."""
    return fixture.get("feature")


def folder(feature, fixtures_dir=None):
    """Where the fixtures of `feature` are: `<fixtures>/optional/<feature>/`."""
    return Path(fixtures_dir or FIXTURES_DIR) / "optional" / feature


def schema_path(feature):
    """The format of the fixtures of `feature`: `schema-<feature>.json` by `schema.json`."""
    return CONTRACT_DIR / f"schema-{feature}.json"


@cache
def _schemas():
    """`{$id: schema}` of the core schema and every feature's (they refer to each other)."""
    paths = [SCHEMA_PATH, *(schema_path(feature) for feature in FEATURES)]
    schemas = [json.loads(Path(path).read_text()) for path in paths]
    return {schema["$id"]: schema for schema in schemas}


def validate_feature(fixture):
    """Raise `jsonschema.ValidationError` unless `fixture` matches its feature's schema
    (whose references into `schema.json` are resolved)."""
    import jsonschema
    from referencing import Registry, Resource

    feature = feature_of(fixture)
    if feature not in FEATURES:
        raise jsonschema.ValidationError(
            f"feature {feature!r} is not an optional feature; known: {list(FEATURES)}"
        )
    schemas = _schemas()
    registry = Registry().with_resources(
        (uri, Resource.from_contents(schema)) for uri, schema in schemas.items()
    )
    schema = next(s for s in schemas.values() if s["$id"].endswith(f"schema-{feature}.json"))
    jsonschema.Draft202012Validator(schema, registry=registry).validate(fixture)


def num_steps(fixture):
    """How many batches a memory fixture has."""
    return len(fixture["inputs"]["steps"])


def step(fixture, index):
    """Step `index` of a memory fixture as a core fixture: its `loss`, that step's
    `inputs` and (when the fixture has them) `expected`, and the fixture's tolerances;
    named `<name>[step <index>]`."""
    view = {
        "name": f"{fixture['name']}[step {index}]",
        "loss": fixture["loss"],
        "inputs": fixture["inputs"]["steps"][index],
        "tolerances": fixture.get("tolerances", {}),
    }
    if "expected" in fixture:
        view["expected"] = fixture["expected"]["steps"][index]
    return view
