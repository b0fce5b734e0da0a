"""The float64 NumPy reference (`tftriplet_conformance.reference`, loops) as a backend.

The golden values come from it, so it checks that the reference and the fixtures still
agree (a change to the reference, or a hand-edited fixture, shows up here).
"""

from __future__ import annotations

import numpy as np

from tftriplet_conformance.adapters import Adapter
from tftriplet_conformance.variants import variant_of


class NumpyAdapter(Adapter):
    name = "numpy"
    dtypes = ("float64",)
    differentiable = True

    def run(self, fixture, dtype):
        inputs = fixture["inputs"]
        labels = np.array(inputs["labels"], dtype=np.int64)
        result = variant_of(fixture).reference(labels, inputs["embeddings"], fixture["loss"])
        outputs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in result.items()}
        return {"loops": outputs}
