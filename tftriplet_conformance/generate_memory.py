"""The fixtures of the optional feature `memory`, from `tftriplet_conformance.cases.memory`.

Every step's expected outputs come from the float64 reference of a loss with a memory
(`tftriplet_conformance.reference.memory_steps`). A case is refused unless it shows the
memory: its stream is longer than the memory (entries get evicted), and some step's
outputs differ from those of its batch alone (an implementation that ignores the memory
fails it). Tie-clear cases keep every step's decisions (its anchors against its pool) away
from 0, with the same signs in float32; half-precision tolerances come from the steps run
on rounded inputs, as for the core fixtures (`generate.half_precision_tolerances`).
"""

from __future__ import annotations

import numpy as np

from tftriplet_conformance import reference
from tftriplet_conformance.cases.memory import pooled_hinges
from tftriplet_conformance.generate import (
    HALF_SLACK,
    TIE_CLEARANCE,
    float32_distances,
    round_to,
)
from tftriplet_conformance.optional import validate_feature
from tftriplet_conformance.variants import memory_reference as run_steps
from tftriplet_conformance.variants import options_of, variant_of


def step_decisions(steps, loss, memory, float32=False):
    """Every step's decision values, its batch's anchors against its pool (1-D)."""
    options = options_of(loss)
    values = []
    for labels, rows, b in reference.memory_pools(steps, memory["size"], memory["warmup"]):
        distances = float32_distances(rows, options["distance"]) if float32 else None
        values.append(reference.decision_values(
            np.array(labels, np.int64), rows, options["name"], options["margin"],
            options["distance"], distances=distances, anchors=b,
        ))
    return np.concatenate(values)


def _check_shows_the_memory(name, steps, loss, memory, results):
    """Refuse a case whose stream fits in the memory, or where the memory changes nothing."""
    if sum(len(labels) for labels, _ in steps[memory["warmup"]:]) <= memory["size"]:
        raise ValueError(f"case {name}: the batches fit in the memory; nothing is evicted")
    variant = variant_of({"loss": loss})
    alone = [variant.reference(np.array(labels, np.int64), rows, loss) for labels, rows in steps]
    if all(np.isclose(a["loss"], r["loss"]) for a, r in zip(alone, results, strict=True)):
        raise ValueError(f"case {name}: no step's loss changes with the memory")


def _check_tie_clear(name, steps, loss, memory, scale):
    decisions = step_decisions(steps, loss, memory)
    nearest = float(np.min(np.abs(decisions)))
    if nearest < TIE_CLEARANCE * scale:
        raise ValueError(f"case {name}: a decision value is {nearest!r} from 0")
    flipped = int(np.sum(np.sign(step_decisions(steps, loss, memory, True)) != np.sign(decisions)))
    if flipped:
        raise ValueError(f"case {name}: {flipped} decision value(s) change sign in float32")


def half_precision_tolerances(steps, loss, memory, results, scale):
    """Tolerances of the float16 and bfloat16 runs: the reference on rounded inputs,
    over every step (see `generate.half_precision_tolerances`)."""
    variant = variant_of({"loss": loss})
    scalars = [k for k in variant.outputs if k not in variant.counts]
    tolerances = {}
    for dtype in ("float16", "bfloat16"):
        rounded = [(labels, round_to(rows, dtype)) for labels, rows in steps]
        moved = run_steps(rounded, loss, memory)
        near = int(np.sum(np.abs(step_decisions(rounded, loss, memory)) < TIE_CLEARANCE * scale))
        counts, scalar_dev, gradient_dev, flips, biggest = 0, 0.0, 0.0, 0.0, 0.0
        for got, want in zip(moved, results, strict=True):
            counts = max([counts] + [abs(int(got[k]) - int(want[k])) for k in variant.counts])
            scalar_dev = max([scalar_dev] + [abs(float(got[k]) - float(want[k])) for k in scalars])
            gradient = np.asarray(want["gradient"])
            gradient_dev = max(gradient_dev, float(np.max(np.abs(got["gradient"] - gradient))))
            flips = max(flips, near / max(int(want.get(variant.denominator, 1)), 1))
            biggest = max(biggest, float(np.max(np.abs(gradient))))
        loss_scale = 1.0 + max(abs(float(r["loss"])) for r in results)
        tolerances[dtype] = {
            "atol": float(HALF_SLACK * scalar_dev + flips * loss_scale),
            "gradient_atol": float(HALF_SLACK * gradient_dev + 2.0 * flips * biggest),
            "count_atol": near + int(HALF_SLACK) * counts,
        }
    return tolerances


def _expected_step(variant, result):
    expected = {key: result[key] for key in variant.outputs}
    for key in variant.outputs:
        expected[key] = int(expected[key]) if key in variant.counts else float(expected[key])
    expected["gradient"] = [[float(x) for x in row] for row in result["gradient"]]
    return expected


def build_memory_fixture(name, spec, generator, check_schema=True):
    """The fixture dict of the memory case `name` from its `spec` and `generator`; checked
    against its schema unless `check_schema` is false (as `generate.build_fixture`)."""
    steps, loss, memory = spec["steps"], spec["loss"], spec["memory"]
    variant = variant_of({"loss": loss})
    results = run_steps(steps, loss, memory)
    _check_shows_the_memory(name, steps, loss, memory, results)
    scale = max(float(np.max(reference.distance_matrix(rows, loss["distance"])))
                for _, rows, _ in reference.memory_pools(steps, memory["size"], memory["warmup"]))
    hinges = pooled_hinges(steps, loss, memory["size"], memory["warmup"])
    if spec.get("tie_clear"):
        _check_tie_clear(name, steps, loss, memory, scale)
    fixture = {
        "name": name,
        "feature": "memory",
        "description": spec["description"],
        "provenance": {"generator": generator, **spec["provenance"]},
        "loss": loss,
        "memory": memory,
        "inputs": {"steps": [{"labels": [int(x) for x in labels], "embeddings": rows}
                             for labels, rows in steps]},
        "expected": {"steps": [_expected_step(variant, r) for r in results]},
        "numerics": {
            "max_distance": scale,
            "min_abs_hinge": float(np.min(np.abs(hinges))) if hinges.size else None,
            "tie_clear": bool(spec.get("tie_clear")),
        },
        "tolerances": half_precision_tolerances(steps, loss, memory, results, scale),
    }
    if check_schema:
        validate_feature(fixture)
    return fixture
