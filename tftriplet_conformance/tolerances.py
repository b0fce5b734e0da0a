"""Tolerances at three levels: runner default, per case (in the fixture), per backend.

The effective tolerance of a (fixture, backend, dtype) is the loosest of the three, field
by field: a case or a backend can only loosen the defaults, and says why where it does.

An output `a` matches its expected float64 value `e` when
`|a - e| <= atol + rtol * |e|` for scalars, and `max |a - e| <= gradient_atol + rtol * max |e|`
for the gradient (relative to its largest entry: entries near 0 carry no relative
precision). Counts match when `|a - e| <= count_atol` (0: exactly).
"""

from __future__ import annotations

FIELDS = ("rtol", "atol", "gradient_atol", "count_atol")

#: Runner defaults, by the dtype the backend computed in.
DEFAULTS = {
    # float64 backends differ from the loop reference only in summation order and in
    # computing distances as |a|^2 - 2ab + |b|^2 (cancellation: ~1e-15 relative).
    "float64": {"rtol": 1e-9, "atol": 1e-12, "gradient_atol": 1e-12, "count_atol": 0},
    # float32: inputs are exact (grid fixtures) or rounded by 2**-24; distances by the
    # expansion lose ~1e-6 relative when |a|^2 >> d^2. Counts are exact (tie-clear cases).
    "float32": {"rtol": 1e-4, "atol": 1e-6, "gradient_atol": 1e-6, "count_atol": 0},
    # Half precision: what rounding the inputs does is per case (the fixture's atol,
    # gradient_atol and count_atol, from generate.half_precision_tolerances); rtol covers
    # the rest: float32 arithmetic inside and the gradient returned in the half dtype
    # (rounded by 2**-11 or 2**-8 relative), with a factor of 4 to spare.
    "float16": {"rtol": 2e-3, "atol": 1e-6, "gradient_atol": 1e-6, "count_atol": 0},
    "bfloat16": {"rtol": 1.6e-2, "atol": 1e-6, "gradient_atol": 1e-6, "count_atol": 0},
}

#: Per backend: `{backend: {dtype: {field: value}}}`, each with the reason in a comment.
BACKEND_OVERRIDES = {
    # Keras 3's torch backend computes ops.matmul, ops.dot, ops.tensordot and
    # ops.maximum(x, python_float) of float64 tensors in float32
    # (keras.backend.result_type maps 64-bit dtypes to 32-bit "to align with JAX"), so
    # tftriplet's pairwise distances and counts carry float32 precision under torch even
    # for float64 inputs. Hold torch's float64 runs to the float32 tolerance until the loss
    # avoids those ops (e.g. ops.einsum for the Gram matrix); then remove this entry.
    # Batch-all's engine multiplies with PyTorch's own product (backend_ops.matmul_t) and
    # meets the float64 tolerance; batch-hard and semi-hard (ops.maximum) do not yet.
    "torch": {"float64": dict(DEFAULTS["float32"])},
}


def effective(fixture, backend, dtype):
    """The tolerance dict for `fixture` run by `backend` in `dtype`."""
    levels = [
        DEFAULTS[dtype],
        fixture.get("tolerances", {}).get(dtype, {}),
        BACKEND_OVERRIDES.get(backend, {}).get(dtype, {}),
    ]
    return {field: max(level.get(field, 0) for level in levels) for field in FIELDS}
