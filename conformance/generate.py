"""``python -m conformance generate``: compute the golden fixtures from ``cases.py``.

The float64 NumPy reference (:mod:`tftriplet.reference`, plain loops) gives every expected
output and the gradient. An existing fixture whose golden values would change is left
alone, and the change shown, unless ``--force`` is given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conformance import FIXTURES_DIR
from conformance.cases import CASES
from conformance.fixtures import differences, dumps, load_fixture, validate
from conformance.variants import squared_from, variant_of

#: A tie-clear case keeps every hinge at least this far from 0, relative to the largest
#: distance: far above float32 rounding (2**-24), so float32 backends count exactly.
TIE_CLEARANCE = 2.0**-14

#: Half-precision inputs are rounded to 2**-8 (bfloat16) or 2**-11 (float16) relative; a
#: hinge may move by about that times the largest distance. Triples closer to a tie than
#: these (relative to the largest distance) may flip, and give the count tolerance.
HALF_TIE_BAND = {"bfloat16": 2.0**-6, "float16": 2.0**-9}
#: Base relative tolerance of half-precision outputs (input rounding, float32 compute).
HALF_RTOL = {"bfloat16": 3e-2, "float16": 4e-3}


def _float32_positive_count(labels, embeddings, loss):
    """Positives counted from float32 distances by the |a|^2 - 2ab + |b|^2 expansion."""
    e = np.asarray(embeddings, dtype=np.float32)
    sq_norm = np.sum(e * e, axis=1)
    sq = np.maximum(sq_norm[:, None] - 2 * (e @ e.T) + sq_norm[None, :], np.float32(0))
    np.fill_diagonal(sq, 0)
    d = sq if squared_from(loss) else np.sqrt(sq)
    labels = np.asarray(labels).reshape(-1)
    same = labels[:, None] == labels[None, :]
    valid = (same & ~np.eye(len(labels), dtype=bool))[:, :, None] & ~same[:, None, :]
    hinge = d[:, :, None] - d[:, None, :] + np.float32(loss["margin"])
    return int(np.sum(valid & (hinge > 0)))


def build_fixture(name, spec):
    """The fixture dict of the case ``name`` from its ``spec`` (what the case returned)."""
    labels, embeddings, loss = spec["labels"], spec["embeddings"], spec["loss"]
    variant = variant_of({"loss": loss})
    labels_array = np.array(labels, dtype=np.int64)
    result = variant.reference(labels_array, embeddings, loss)

    distances = np.asarray(embeddings, dtype=np.float64)
    diff = distances[:, None, :] - distances[None, :, :]
    sq = np.einsum("ijk,ijk->ij", diff, diff)
    scale = float(np.max(sq if squared_from(loss) else np.sqrt(sq)))
    hinges = variant.hinges(labels_array, embeddings, loss)
    min_abs_hinge = float(np.min(np.abs(hinges))) if hinges.size else None

    if spec.get("tie_clear"):
        if min_abs_hinge is not None and min_abs_hinge < TIE_CLEARANCE * scale:
            raise ValueError(
                f"case {name}: a hinge is {min_abs_hinge!r} from 0, closer than "
                f"{TIE_CLEARANCE} * {scale!r}; pick another seed or margin"
            )
        float32_count = _float32_positive_count(labels_array, embeddings, loss)
        if float32_count != result["num_positive"]:
            raise ValueError(
                f"case {name}: float32 counts {float32_count} positive triples, float64 "
                f"{result['num_positive']}; the case is not tie-clear"
            )

    expected = {key: result[key] for key in variant.outputs}
    for key in variant.counts:
        expected[key] = int(expected[key])
    for key in set(variant.outputs) - set(variant.counts):
        expected[key] = float(expected[key])
    expected["gradient"] = [[float(x) for x in row] for row in result["gradient"]]
    if "printed" in spec:
        expected["printed"] = spec["printed"].format(**expected)

    tolerances = {}
    num_positive = max(int(result.get("num_positive", 1)), 1)
    for dtype, band in HALF_TIE_BAND.items():
        near = int(np.sum(np.abs(hinges) < band * scale)) if hinges.size else 0
        tolerances[dtype] = {
            "rtol": HALF_RTOL[dtype] + 2.0 * near / num_positive,
            "atol": band * max(scale, 1.0),
            "count_atol": near,
        }
    tolerances.update(spec.get("tolerances", {}))

    provenance = {"generator": f"conformance.cases.{name}", **spec["provenance"]}
    fixture = {
        "name": name,
        "description": spec["description"],
        "provenance": provenance,
        "loss": loss,
        "inputs": {"labels": [int(x) for x in labels], "embeddings": embeddings},
        "expected": expected,
        "numerics": {
            "max_distance": scale,
            "min_abs_hinge": min_abs_hinge,
            "tie_clear": bool(spec.get("tie_clear")),
        },
        "tolerances": tolerances,
    }
    validate(fixture)
    return fixture


def generate_all(names=None):
    """``{name: fixture}`` for every registered case (or those in ``names``)."""
    selected = names or list(CASES)
    return {name: build_fixture(name, CASES[name]()) for name in selected}


def write_fixtures(out_dir=None, force=False, names=None, log=print):
    """Write the fixtures into ``out_dir``; returns the number of refused changes.

    New files are written. A file whose content would change is rewritten only with
    ``force``; otherwise each difference is printed and counted. Differences within
    :data:`~conformance.fixtures.DRIFT_RTOL` leave the file as it is.
    """
    out = Path(out_dir or FIXTURES_DIR)
    out.mkdir(parents=True, exist_ok=True)
    fixtures = generate_all(names)
    refused = 0
    for name, fixture in fixtures.items():
        path = out / f"{name}.json"
        if path.exists():
            changes = differences(load_fixture(path), fixture)
            if not changes:
                continue
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
    if names is None:
        for path in sorted(out.glob("*.json")):
            if path.stem not in fixtures:
                if force:
                    log(f"removing {path.name} (no such case)")
                    path.unlink()
                else:
                    log(f"REFUSING to remove {path.name} (no such case in cases.py)")
                    refused += 1
    if refused:
        log(f"{refused} fixture(s) would change; rerun with --force to accept.")
    return refused


def check_drift(directory=None, log=print):
    """Regenerate in memory and list every difference from the files on disk."""
    fixtures = generate_all()
    directory = Path(directory or FIXTURES_DIR)
    problems = []
    on_disk = {p.stem for p in directory.glob("*.json")}
    for name in sorted(on_disk - set(fixtures)):
        problems.append(f"{name}.json: no such case in cases.py")
    for name, fixture in fixtures.items():
        path = directory / f"{name}.json"
        if not path.exists():
            problems.append(f"{name}.json: missing")
            continue
        problems.extend(f"{name}.json: {d}" for d in differences(load_fixture(path), fixture))
    for line in problems:
        log(line)
    return problems


__all__ = ["build_fixture", "check_drift", "generate_all", "write_fixtures"]
