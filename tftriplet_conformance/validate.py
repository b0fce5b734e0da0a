"""What an adapter declares and returns, checked before anything is compared.

The runner trusts no adapter: its attributes (`name`, `dtypes`, `differentiable`,
`not_reported`, `differences`) and every value its methods return are checked here for
type and shape, and a wrong one is reported as that adapter's failure, saying what was
expected. Only checked values reach `compare`.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from tftriplet_conformance import optional
from tftriplet_conformance.differs import Difference
from tftriplet_conformance.tolerances import DEFAULTS
from tftriplet_conformance.variants import VARIANTS, variant_of

#: Every scalar output a variant can have: what `not_reported` may name, apart from `loss`.
SCALARS = tuple(dict.fromkeys(k for v in VARIANTS.values() for k in v.outputs))
_EXAMPLE = "{'mode': {'loss': 0.27, 'gradient': [[...], ...], ...}}"


@dataclass(frozen=True)
class Declarations:
    """An adapter's checked attributes (what the runner uses, read once)."""

    name: str
    dtypes: tuple
    differentiable: bool
    not_reported: tuple = ()
    differences: tuple = ()
    features: tuple = ()


def read_declarations(adapter):
    """The raw attributes, read in one go (the guard runs this in the adapter's thread)."""
    missing = [a for a in ("name", "dtypes", "differentiable") if not hasattr(adapter, a)]
    if missing:
        return {"missing": missing}
    return {
        "name": adapter.name,
        "dtypes": adapter.dtypes,
        "differentiable": adapter.differentiable,
        "not_reported": getattr(adapter, "not_reported", ()),
        "differences": getattr(adapter, "differences", ()),
        "features": getattr(adapter, "features", ()),
    }


def check_declarations(raw):
    """`(Declarations, None)`, or `(None, message)` naming the first wrong attribute."""
    if "missing" in raw:
        return None, f"has no attribute {raw['missing']}: subclass adapters.Adapter"
    name, dtypes = raw["name"], raw["dtypes"]
    if not isinstance(name, str) or not name:
        return None, f"name is {show(name)}: expected a non-empty str"
    if isinstance(dtypes, str) or not isinstance(dtypes, (tuple, list)):
        return None, f"dtypes is {show(dtypes)}: expected a tuple of dtype names, e.g. ('float64',)"
    if not dtypes:
        return None, "dtypes is empty: expected at least one dtype, e.g. ('float64',)"
    unknown = [d for d in dtypes if d not in DEFAULTS]
    if unknown:
        return None, (
            f"dtypes {list(dtypes)}: {show(unknown[0])} has no tolerance entry; "
            f"known: {sorted(DEFAULTS)}"
        )
    if len(set(dtypes)) != len(dtypes):
        return None, f"dtypes {list(dtypes)} names a dtype twice"
    if not isinstance(raw["differentiable"], bool):
        return None, f"differentiable is {show(raw['differentiable'])}: expected True or False"
    problem = _check_not_reported(raw["not_reported"])
    if problem:
        return None, problem
    differences = raw["differences"]
    if isinstance(differences, (str, dict)) or not isinstance(differences, (tuple, list)):
        return None, f"differences is {show(differences)}: expected a tuple of differs.Difference"
    wrong = [d for d in differences if not isinstance(d, Difference)]
    if wrong:
        return None, f"differences holds {show(wrong[0])}: expected differs.Difference entries"
    problem = _check_features(raw["features"])
    if problem:
        return None, problem
    return Declarations(
        name, tuple(dtypes), raw["differentiable"], tuple(raw["not_reported"]),
        tuple(differences), tuple(raw["features"]),
    ), None


def _check_features(value):
    """What is wrong with the optional features an adapter claims, or None."""
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
        return f"features is {show(value)}: expected a tuple of optional features, e.g. ('memory',)"
    unknown = [f for f in value if f not in optional.FEATURES]
    if unknown:
        return f"features names {show(unknown[0])}, not an optional feature; known: " + str(
            list(optional.FEATURES))
    return None


def _check_not_reported(value):
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
        return f"not_reported is {show(value)}: expected a tuple of output names"
    if "loss" in value or "gradient" in value:
        return (
            f"not_reported {list(value)} names the loss or the gradient: only counts may go "
            "unreported (a loss-only implementation sets differentiable = False)"
        )
    unknown = [k for k in value if k not in SCALARS]
    if unknown:
        return f"not_reported names {show(unknown[0])}, not an output; outputs: {list(SCALARS)}"
    return None


def check_pair(value, what):
    """`((bool, reason), None)` from what `available()`/`supports()` returned, or
    `(None, message)`."""
    ok = isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], bool)
    if not ok or not isinstance(value[1], str):
        expected = "expected a pair (bool, reason), e.g. (True, '')"
        return None, f"{what} returned {show(value)}: {expected}"
    return value, None


def check_runs(runs, fixture, declared, where):
    """`{mode: outputs}` from what `run` returned, each mode's outputs checked
    (`check_outputs`); a wrong return as a whole becomes one mode `"run"` with the error.
    `where` names the call in messages, e.g. `"run() at my_adapter.py:40"`."""
    problem = _runs_problem(runs, where)
    if problem:
        return {"run": {"error": problem}}
    checked = {}
    for mode, outputs in runs.items():
        if not isinstance(mode, str) or not mode:
            problem = f"{where} returned the mode {show(mode)}: expected a non-empty str"
            checked[repr(mode)] = {"error": problem}
        else:
            checked[mode] = check_outputs(outputs, fixture, declared, where)
    if all(set(o) == {"printed"} for o in checked.values()):
        problem = f"{where} returned only 'printed' lines: no mode returned the loss"
        checked = {m: {"error": problem} for m in checked}
    return checked


def _runs_problem(runs, where):
    if runs is None or not isinstance(runs, dict):
        return f"{where} returned {show(runs)}: expected {{mode: outputs}}, e.g. {_EXAMPLE}"
    if not runs:
        return f"{where} returned no modes ({{}}): expected {{mode: outputs}}, e.g. {_EXAMPLE}"
    if set(runs) == {"error"}:
        return (
            f"{where} returned a top-level {{'error': {show(runs['error'])}}}: an error goes "
            "under a mode, {mode: {'error': message}}"
        )
    flat = [k for k, v in runs.items() if k in (*SCALARS, "gradient") and not isinstance(v, dict)]
    if flat:
        return (
            f"{where} returned a flat dict of outputs ({', '.join(map(str, runs))}) without "
            f"the mode level: expected {{mode: outputs}}, e.g. {_EXAMPLE}"
        )
    return None


def check_outputs(outputs, fixture, declared, where):
    """One mode's outputs: numbers as numbers, the gradient B x D, or `{"error": text}`;
    for a memory fixture `{"steps": [outputs of each step]}`, every step checked."""
    if optional.feature_of(fixture) == "memory":
        return _check_steps(outputs, fixture, declared, where)
    if not isinstance(outputs, dict):
        return {"error": f"{where} returned {show(outputs)} for a mode: expected a dict"}
    if "error" in outputs:
        return {"error": f"returned an error: {outputs['error']}"}
    if not outputs:
        return {"error": f"{where} returned no outputs ({{}}) for a mode: expected the loss, "
                f"its counts{' and the gradient' if declared.differentiable else ''}"}
    if set(outputs) == {"printed"} and "printed" not in fixture["expected"]:
        return {"error": f"{where} returned only 'printed', and this fixture prints nothing"}
    problems, checked = [], {}
    for key in (k for k in variant_of(fixture).outputs if k in outputs):
        value = outputs[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            problems.append(f"{key} {show(value)}: expected a number (int or float)")
        checked[key] = value
    if "gradient" in outputs:
        checked["gradient"], problem = _gradient(outputs["gradient"], fixture)
        problems += [problem] if problem else []
    elif declared.differentiable and set(outputs) != {"printed"}:
        b, d = _shape(fixture)
        return {
            "error": "returned no gradient: a differentiable adapter returns 'gradient' "
            f"(d loss / d embeddings, B x D = {b} x {d})"
        }
    if "printed" in outputs:
        checked["printed"] = outputs["printed"]
        if not isinstance(outputs["printed"], str):
            problems.append(f"printed {show(outputs['printed'])}: expected a str")
    if problems:
        return {"error": f"{where} returned " + "; ".join(problems)}
    return checked


def _check_steps(outputs, fixture, declared, where):
    """A memory fixture's outputs: one checked outputs dict per step, in order."""
    n = optional.num_steps(fixture)
    expected = f"expected {{'steps': [outputs of step 0, ..., step {n - 1}]}}"
    if isinstance(outputs, dict) and "error" in outputs:
        return {"error": f"returned an error: {outputs['error']}"}
    steps = outputs.get("steps") if isinstance(outputs, dict) else None
    if not isinstance(steps, (list, tuple)):
        return {"error": f"{where} returned {show(outputs)} for a memory fixture: {expected}"}
    if len(steps) != n or set(outputs) != {"steps"}:
        return {"error": f"{where} returned {len(steps)} steps (and keys {sorted(outputs)}) "
                f"for a memory fixture of {n} steps: {expected}"}
    checked = []
    for index, step_outputs in enumerate(steps):
        one = check_outputs(step_outputs, optional.step(fixture, index), declared, where)
        if "error" in one:
            return {"error": f"step {index}: {one['error']}"}
        checked.append(one)
    return {"steps": checked}


def _shape(fixture):
    """`(B, D)` of the fixture's embeddings."""
    embeddings = fixture["inputs"]["embeddings"]
    return len(embeddings), len(embeddings[0]) if embeddings else 0


def _gradient(value, fixture):
    """`(float64 array, None)` or `(None, what is wrong)`: B rows of D numbers."""
    b, d = _shape(fixture)
    expected = f"expected B x D = {b} x {d} numbers"
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiu":
            return None, f"a gradient of dtype {value.dtype}: {expected}"
        if value.shape != (b, d):
            return None, f"a gradient of shape {value.shape}: {expected}"
        return value.astype(np.float64), None
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        return None, f"gradient {show(value)}: {expected} (nested lists or an array)"
    if len(value) != b:
        return None, f"a gradient of {len(value)} rows: {expected}"
    for i, row in enumerate(value):
        if isinstance(row, np.ndarray):
            row = row.tolist()
        if not isinstance(row, (list, tuple)):
            return None, f"gradient[{i}] {show(row)}: {expected}"
        if len(row) != d:
            return None, f"a ragged gradient (row {i} has {len(row)} entries): {expected}"
        for j, x in enumerate(row):
            if isinstance(x, bool) or not isinstance(x, numbers.Real):
                return None, f"gradient[{i}][{j}] {show(x)}: expected a number"
    return np.array(value, dtype=np.float64).reshape(b, d), None


def show(value, limit=60):
    """A value with its type, shortened: `'0.27' (str)`."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{text} ({type(value).__name__})"
