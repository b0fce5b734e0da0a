"""The tftriplet Keras loss under one Keras 3 backend, run in a subprocess.

Keras fixes its backend once per process (`KERAS_BACKEND`), so each backend runs every
fixture in its own `python -m tftriplet_conformance.adapters.keras_worker` process and returns the
outputs as JSON. The parent never imports a framework.

JAX: the subprocess sets `JAX_ENABLE_X64=1`. Without it JAX has no float64 (the float64
fixtures would silently run in float32) and converts int64 labels to int32, keeping their
low 32 bits: labels equal mod 2**32 (`2**40 + k` and `k`) would merge. tftriplet refuses
such labels without x64 (`tftriplet.inputs`); users on JAX with them must enable x64.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

from tftriplet_conformance.adapters import Adapter

#: The module each backend needs, and extra environment for its process.
FRAMEWORKS = {
    "tensorflow": ("tensorflow", {}),
    "jax": ("jax", {"JAX_ENABLE_X64": "1"}),
    "torch": ("torch", {}),
}

#: Execution modes per backend and the dtypes each runs. Half precision is computed in
#: float32 inside (the same arithmetic in every mode), so one mode covers it. Costs drive
#: the rest (CI has 2 cores): each XLA compilation takes 1-3 s of CPU. TensorFlow's
#: compiled modes run float32 (what users train in). JAX runs under jax.jit only (as Keras
#: trains on JAX): op-by-op JAX compiles every primitive for each new shape and dtype,
#: ~10 s per fixture and dtype here, while jit compiles the whole computation once.
MODES = {
    "tensorflow": {
        "eager": ("float64", "float32", "float16", "bfloat16"),
        "function": ("float32",),
        "xla": ("float32",),
    },
    "jax": {"jit": ("float64", "float32", "bfloat16")},
    "torch": {"eager": ("float64", "float32", "float16", "bfloat16")},
}

#: Seconds one backend may take over all fixtures.
TIMEOUT = 1200


class KerasAdapter(Adapter):
    differentiable = True
    features = ("memory",)

    def __init__(self, backend):
        self.name = backend
        self.modes = MODES[backend]
        self.dtypes = tuple(dict.fromkeys(d for ds in self.modes.values() for d in ds))
        self._results = None

    def available(self):
        module, _ = FRAMEWORKS[self.name]
        for needed in (module, "keras"):
            if importlib.util.find_spec(needed) is None:
                return False, f"{needed} is not installed"
        return True, ""

    def prepare(self, fixtures):
        module, extra_env = FRAMEWORKS[self.name]
        env = {**os.environ, "KERAS_BACKEND": self.name, **extra_env}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        request = json.dumps({"fixtures": fixtures, "modes": self.modes})
        proc = subprocess.run(
            [sys.executable, "-m", "tftriplet_conformance.adapters.keras_worker"],
            input=request,
            capture_output=True,
            text=True,
            env=env,
            timeout=TIMEOUT,
        )
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-15:]
            raise RuntimeError(
                f"the {self.name} worker exited with {proc.returncode}:\n" + "\n".join(tail)
            )
        self._results = json.loads(proc.stdout)

    def run(self, fixture, dtype):
        if self._results is None:
            self.prepare([fixture])
        return self._results[fixture["name"]].get(dtype, {})
