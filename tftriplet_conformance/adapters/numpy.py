"""The float64 NumPy reference (`tftriplet_conformance.reference`, loops) as a backend,
the optional memory fixtures included (`reference.memory_steps`).

The golden values come from it, so it checks that the reference and the fixtures still
agree (a change to the reference, or a hand-edited fixture, shows up here).
"""

from __future__ import annotations

import numpy as np

from tftriplet_conformance import optional
from tftriplet_conformance.adapters import Adapter
from tftriplet_conformance.variants import memory_reference, variant_of


class NumpyAdapter(Adapter):
    name = "numpy"
    dtypes = ("float64",)
    differentiable = True
    features = ("memory",)

    def run(self, fixture, dtype):
        if optional.feature_of(fixture) == "memory":
            steps = [(step["labels"], step["embeddings"]) for step in fixture["inputs"]["steps"]]
            results = memory_reference(steps, fixture["loss"], fixture["memory"])
            return {"loops": {"steps": [_plain(result) for result in results]}}
        inputs = fixture["inputs"]
        labels = np.array(inputs["labels"], dtype=np.int64)
        result = variant_of(fixture).reference(labels, inputs["embeddings"], fixture["loss"])
        return {"loops": _plain(result)}


def _plain(result):
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in result.items()}
