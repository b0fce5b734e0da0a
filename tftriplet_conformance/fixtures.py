"""Reading, writing, validating and comparing fixture files."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tftriplet_conformance import FIXTURES_DIR, SCHEMA_PATH, optional
from tftriplet_conformance.errors import UsageError

#: Golden floats regenerated on another NumPy build may differ in the last bits (summation
#: order); the drift check and `generate` treat differences below this as no change.
DRIFT_RTOL = 1e-12


def load_schema():
    return json.loads(SCHEMA_PATH.read_text())


def validate(fixture, schema=None):
    """Raise `jsonschema.ValidationError` unless `fixture` matches `schema.json` (a
    fixture of an optional feature: its feature's schema, `optional.validate_feature`)."""
    import jsonschema

    if schema is None and optional.feature_of(fixture) is not None:
        optional.validate_feature(fixture)
        return
    jsonschema.validate(fixture, schema or load_schema())


def fixture_paths(directory=None, with_optional=False):
    """The core fixture files of `directory`; `with_optional`: those of every optional
    feature too (`optional/<feature>/*.json`)."""
    folder = Path(directory or FIXTURES_DIR)
    paths = sorted(folder.glob("*.json"))
    if with_optional:
        for feature in optional.FEATURES:
            paths += sorted(optional.folder(feature, folder).glob("*.json"))
    return paths


def load_fixture(path):
    return json.loads(Path(path).read_text())


def load_fixtures(directory=None, names=None, with_optional=False):
    """All fixtures in `directory` (default: the package's), sorted by name; `names`
    keeps only those. `with_optional`: the fixtures of the optional features too, after
    the core ones (`tftriplet_conformance.optional`).

    Raises `UsageError` when there is none (a missing or empty folder), when a file is
    not a JSON object with a `name`, when two files share a name, or when a name in
    `names` is not there.
    """
    folder = Path(directory or FIXTURES_DIR)
    paths = fixture_paths(folder, with_optional)
    if not paths:
        state = "is empty of *.json files" if folder.is_dir() else "does not exist"
        raise UsageError(f"no fixtures: the folder {folder} {state}")
    fixtures, seen = [], {}
    for path in paths:
        try:
            fixture = load_fixture(path)
        except (OSError, ValueError) as err:
            raise UsageError(f"fixture file {path} cannot be read as JSON: {err}") from err
        if not isinstance(fixture, dict) or not isinstance(fixture.get("name"), str):
            raise UsageError(f"fixture file {path} is not a JSON object with a 'name'")
        _check_place(fixture, path, folder)
        if fixture["name"] in seen:
            raise UsageError(f"two fixtures are named {fixture['name']!r}: {seen[fixture['name']]} "
                             f"and {path}")
        seen[fixture["name"]] = path
        fixtures.append(fixture)
    if names:
        unknown = set(names) - set(seen)
        if unknown:
            raise UsageError(f"no fixture named {sorted(unknown)} in {folder}")
        fixtures = [f for f in fixtures if f["name"] in names]
    return fixtures


def _check_place(fixture, path, folder):
    """A fixture's `feature` must be the folder it is in: none in the core folder, `F` in
    `optional/F/` (an optional fixture among the core ones would reach every adapter)."""
    feature = optional.feature_of(fixture)
    place = None if path.parent == folder else path.parent.name
    if feature != place:
        raise UsageError(
            f"fixture file {path} has feature {feature!r} but lies in the folder of "
            f"{'the core fixtures' if place is None else f'the optional feature {place!r}'}"
        )


def _dump(value, indent):
    """JSON with one line per matrix row, so that diffs stay readable."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad}  {json.dumps(k)}: {_dump(v, indent + 2)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and value and isinstance(value[0], list):
        rows = [f"{pad}  {json.dumps(row, allow_nan=False)}" for row in value]
        return "[\n" + ",\n".join(rows) + "\n" + pad + "]"
    if isinstance(value, list) and value and isinstance(value[0], dict):  # a memory's steps
        items = [f"{pad}  {_dump(item, indent + 2)}" for item in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    # json.dumps writes floats with repr: the shortest decimal that round-trips float64
    return json.dumps(value, allow_nan=False)


def dumps(fixture):
    return _dump(fixture, 0) + "\n"


def keep_unchanged(old, new, rtol=DRIFT_RTOL):
    """`new` with every float that `differences` calls unchanged taken from `old`, so that
    rewriting a file (a new field, a moved one) never moves a golden number in its last
    bits (another NumPy's summation order)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {k: keep_unchanged(old[k], v, rtol) if k in old else v for k, v in new.items()}
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [keep_unchanged(a, b, rtol) for a, b in zip(old, new, strict=True)]
    if isinstance(old, float) and isinstance(new, float) and not differences(old, new, "", rtol):
        return old
    return new


def differences(old, new, path="", rtol=DRIFT_RTOL):
    """Human-readable differences between two fixtures; floats within `rtol` are equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else key
            if key not in old:
                out.append(f"{where}: added")
            elif key not in new:
                out.append(f"{where}: removed")
            else:
                out.extend(differences(old[key], new[key], where, rtol))
        return out
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{path}: length {len(old)} -> {len(new)}"]
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out.extend(differences(a, b, f"{path}[{i}]", rtol))
        return out
    if isinstance(old, float) and isinstance(new, float) and type(old) is type(new):
        if math.isclose(old, new, rel_tol=rtol, abs_tol=0.0):
            return []
        return [f"{path}: {old!r} -> {new!r}"]
    if type(old) is not type(new) or old != new:
        return [f"{path}: {old!r} -> {new!r}"]
    return []
