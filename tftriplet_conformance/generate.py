"""`python -m tftriplet_conformance generate`: the fixtures from `tftriplet_conformance.cases`.

The float64 NumPy reference (`tftriplet_conformance.reference`, loops) gives every
expected output and the gradient. An existing fixture whose golden values would change is left
alone, and the change shown, unless `--force` is given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tftriplet_conformance import FIXTURES_DIR, optional, reference
from tftriplet_conformance.cases import CASES, OPTIONAL_CASES
from tftriplet_conformance.fixtures import (
    differences,
    dumps,
    keep_unchanged,
    load_fixture,
    validate,
)
from tftriplet_conformance.variants import variant_of

#: A tie-clear case keeps every hinge at least this far from 0, relative to the largest
#: distance: far above float32 rounding (2**-24), so float32 backends count exactly.
TIE_CLEARANCE = 2.0**-14

#: Half-precision runs see their inputs rounded (float64 -> float32 -> half, as the
#: backends cast them). Each case's half tolerances come from the float64 reference on
#: those rounded inputs: `HALF_SLACK` times its deviation from the golden values.
HALF_SLACK = 2.0


def round_to(embeddings, dtype):
    """`embeddings` rounded as a half-precision run sees them (float64 -> float32 -> `dtype`)."""
    import ml_dtypes  # a Keras dependency

    half = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}[dtype]
    e = np.asarray(embeddings, dtype=np.float64).astype(np.float32)
    return e.astype(half).astype(np.float64)


def half_precision_tolerances(labels, embeddings, loss, result, scale):
    """Tolerances of the float16 and bfloat16 runs of a case, from its rounded inputs.

    `count_atol`: how far the counts move when the inputs are rounded, plus the rounded
    case's near-ties (hinges within `TIE_CLEARANCE` of 0, which float32 arithmetic may
    flip). `atol` and `gradient_atol`: `HALF_SLACK` times the deviation of the scalars
    and of the gradient, plus what each possible flip could add (one hinge in the sum, and
    a change of 1 in the denominator).
    """
    variant = variant_of({"loss": loss})
    scalars = [k for k in variant.outputs if k not in variant.counts]
    gradient = np.asarray(result["gradient"])
    tolerances = {}
    for dtype in ("float16", "bfloat16"):
        rounded = round_to(embeddings, dtype)
        moved = variant.reference(labels, rounded, loss)
        decisions = _decisions(variant, labels, rounded, loss)
        near = int(np.sum(np.abs(decisions) < TIE_CLEARANCE * scale))
        count_atol = near + int(HALF_SLACK) * max(
            (abs(int(moved[k]) - int(result[k])) for k in variant.counts), default=0
        )
        denominator = max(int(result.get(variant.denominator, 1)), 1)
        flips = near / denominator
        scalar_dev = max(abs(float(moved[k]) - float(result[k])) for k in scalars)
        gradient_dev = float(np.max(np.abs(np.asarray(moved["gradient"]) - gradient)))
        tolerances[dtype] = {
            "atol": float(HALF_SLACK * scalar_dev + flips * (1.0 + abs(result["loss"]))),
            "gradient_atol": float(
                HALF_SLACK * gradient_dev + 2.0 * flips * np.max(np.abs(gradient))
            ),
            "count_atol": count_atol,
        }
    return tolerances


def _hinges(variant, labels, embeddings, loss):
    """The variant's hinge arguments, or none for a variant without hinges."""
    if variant.hinges is None:
        return np.zeros(0)
    return variant.hinges(labels, embeddings, loss)


def _decisions(variant, labels, embeddings, loss, distances=None):
    """Every value whose sign decides a count or selection (the hinges by default)."""
    function = variant.decisions or variant.hinges
    if function is None:
        return np.zeros(0)
    return function(labels, embeddings, loss, distances=distances)


def float32_distances(embeddings, distance):
    """Distances as the Keras loss computes them in float32.

    Euclidean: the `|a|^2 - 2ab + |b|^2` expansion clamped at 0 (then `sqrt`); cosine:
    `1 - cos` of the L2-normalised rows (a zero row stays zero), clipped to `[0, 2]`.
    """
    e = np.asarray(embeddings, dtype=np.float32)
    if distance == "cosine":
        norm = np.sqrt(np.sum(e * e, axis=1, keepdims=True))
        unit = np.where(norm > 0, e / np.where(norm > 0, norm, 1), np.float32(0))
        d = np.clip(np.float32(1) - unit @ unit.T, np.float32(0), np.float32(2))
    else:
        sq_norm = np.sum(e * e, axis=1)
        d = np.maximum(sq_norm[:, None] - 2 * (e @ e.T) + sq_norm[None, :], np.float32(0))
        if distance == "euclidean":
            d = np.sqrt(d)
    np.fill_diagonal(d, 0)
    return d


def _check_tie_clear(name, variant, labels, embeddings, loss, scale):
    """Refuse a tie-clear case whose decisions are near 0 or change sign in float32."""
    decisions = _decisions(variant, labels, embeddings, loss)
    if not decisions.size:
        return
    nearest = float(np.min(np.abs(decisions)))
    if nearest < TIE_CLEARANCE * scale:
        raise ValueError(
            f"case {name}: a decision value is {nearest!r} from 0, closer than "
            f"{TIE_CLEARANCE} * {scale!r}; pick another seed or margin"
        )
    distance = loss.get("distance", "euclidean")
    distances32 = float32_distances(embeddings, distance).astype(np.float64)
    decisions32 = _decisions(variant, labels, embeddings, loss, distances=distances32)
    flipped = int(np.sum(np.sign(decisions32) != np.sign(decisions)))
    if flipped:
        raise ValueError(
            f"case {name}: {flipped} decision value(s) change sign with float32 distances; "
            "the case is not tie-clear"
        )


def build_fixture(name, spec, generator, check_schema=True):
    """The fixture dict of the case `name` from its `spec` (what the case returned) and
    `generator`, the dotted path of the code that made it (`Case.where`); checked against
    `schema.json` unless `check_schema` is false (a fresh case: its name is not a file's,
    and a run needs no `jsonschema`)."""
    labels, embeddings, loss = spec["labels"], spec["embeddings"], spec["loss"]
    variant = variant_of({"loss": loss})
    labels_array = np.array(labels, dtype=np.int64)
    result = variant.reference(labels_array, embeddings, loss)

    scale = float(np.max(reference.distance_matrix(embeddings, loss["distance"])))
    hinges = _hinges(variant, labels_array, embeddings, loss)
    min_abs_hinge = float(np.min(np.abs(hinges))) if hinges.size else None

    if spec.get("tie_clear"):
        _check_tie_clear(name, variant, labels_array, embeddings, loss, scale)

    expected = {key: result[key] for key in variant.outputs}
    for key in variant.counts:
        expected[key] = int(expected[key])
    for key in set(variant.outputs) - set(variant.counts):
        expected[key] = float(expected[key])
    expected["gradient"] = [[float(x) for x in row] for row in result["gradient"]]
    if "printed" in spec:
        expected["printed"] = spec["printed"].format(**expected)

    tolerances = half_precision_tolerances(labels_array, embeddings, loss, result, scale)
    tolerances.update(spec.get("tolerances", {}))

    provenance = {"generator": generator, **spec["provenance"]}
    fixture = {
        "name": name,
        "description": spec["description"],
        "provenance": provenance,
        "loss": loss,
        **({"hints": spec["hints"]} if spec.get("hints") else {}),
        "inputs": {"labels": [int(x) for x in labels], "embeddings": embeddings},
        "expected": expected,
        "numerics": {
            "max_distance": scale,
            "min_abs_hinge": min_abs_hinge,
            "tie_clear": bool(spec.get("tie_clear")),
        },
        "tolerances": tolerances,
    }
    if check_schema:
        validate(fixture)
    return fixture


def generate_all(names=None):
    """`{name: fixture}` for every registered core case (or those in `names`)."""
    selected = names or list(CASES)
    return {name: build_fixture(name, CASES[name].make(), CASES[name].where) for name in selected}


def generate_optional():
    """`{feature: {name: fixture}}` for the cases of every optional feature."""
    from tftriplet_conformance.generate_memory import build_memory_fixture

    builders = {"memory": build_memory_fixture}
    return {
        feature: {name: builders[feature](name, case.make(), case.where)
                  for name, case in cases.items()}
        for feature, cases in OPTIONAL_CASES.items()
    }


def _folders(out_dir, names=None):
    """`[(folder, {name: fixture}, whether to remove other files)]`: the core fixtures,
    then each optional feature's (all of them only when no `names` are asked for)."""
    out = Path(out_dir or FIXTURES_DIR)
    folders = [(out, generate_all(names), names is None)]
    if names is None:
        folders += [(optional.folder(feature, out), fixtures, True)
                    for feature, fixtures in generate_optional().items()]
    return folders


def write_fixtures(out_dir=None, force=False, names=None, log=print):
    """Write the fixtures into `out_dir` (and its `optional/<feature>/` folders); returns
    the number of refused changes.

    New files are written. A file whose content would change is rewritten only with
    `force` (keeping every float on disk within `fixtures.DRIFT_RTOL` of the new one:
    `fixtures.keep_unchanged`); otherwise each difference is printed and counted.
    Differences within `DRIFT_RTOL` alone leave the file as it is.
    """
    refused = sum(_write_folder(folder, fixtures, force, prune, log)
                  for folder, fixtures, prune in _folders(out_dir, names))
    if refused:
        log(f"{refused} fixture(s) would change; rerun with --force to accept.")
    return refused


def _write_folder(out, fixtures, force, prune, log):
    out.mkdir(parents=True, exist_ok=True)
    refused = 0
    for name, fixture in fixtures.items():
        path = out / f"{name}.json"
        if path.exists():
            on_disk = load_fixture(path)
            changes = differences(on_disk, fixture)
            if not changes:
                continue
            fixture = keep_unchanged(on_disk, fixture)
            verb = "rewriting" if force else "REFUSING to change"
            log(f"{verb} {path.name} ({len(changes)} differences):")
            for line in changes[:20]:
                log(f"    {line}")
            if len(changes) > 20:
                log(f"    ... and {len(changes) - 20} more")
            if not force:
                refused += 1
                continue
        else:
            log(f"writing {path.name}")
        path.write_text(dumps(fixture))
    for path in sorted(out.glob("*.json")) if prune else ():
        if path.stem not in fixtures:
            if force:
                log(f"removing {path.name} (no such case)")
                path.unlink()
            else:
                log(f"REFUSING to remove {path.name} (not in tftriplet_conformance.cases)")
                refused += 1
    return refused


def check_drift(directory=None, log=print):
    """Regenerate in memory and list every difference from the files on disk (the core
    fixtures and every optional feature's)."""
    problems, top = [], Path(directory or FIXTURES_DIR)
    for folder, fixtures, _ in _folders(directory):
        where = "" if folder == top else f"{folder.relative_to(top).as_posix()}/"
        on_disk = {p.stem for p in folder.glob("*.json")}
        for name in sorted(on_disk - set(fixtures)):
            problems.append(f"{where}{name}.json: no such case in tftriplet_conformance.cases")
        for name, fixture in fixtures.items():
            path = folder / f"{name}.json"
            if not path.exists():
                problems.append(f"{where}{name}.json: missing")
                continue
            problems.extend(f"{where}{name}.json: {d}"
                            for d in differences(load_fixture(path), fixture))
    for line in problems:
        log(line)
    return problems


__all__ = ["build_fixture", "check_drift", "generate_all", "generate_optional",
           "write_fixtures"]
