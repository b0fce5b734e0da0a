"""TensorFlow Similarity and TensorFlow Addons: probed, not run.

Both were written for TensorFlow 2 with Keras 2 (`tf.keras`). With TensorFlow 2.21, whose
`tf.keras` is Keras 3, neither works as its users call it (`docs/peers.md` records the
errors):

- `import tensorflow_addons` fails: it imports `keras.src.engine`, which Keras 3 does
  not have.
- `tensorflow_similarity` imports, but `TripletLoss()` raises: it passes
  `reduction="auto"` (`tf.keras.losses.Reduction.AUTO`), which Keras 3's `Loss`
  rejects.

`available()` probes the package in a subprocess (so that this process imports no
framework), calling it as the package's documentation does, and returns the probe's real
error. A probe that succeeds (a later release) says so: the adapter would then need its
`run`, which is not written for a package that cannot run here.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

from tftriplet_conformance.adapters import Adapter

#: Seconds a probe may take (importing TensorFlow).
PROBE_TIMEOUT = 300


class _ProbedAdapter(Adapter):
    package = ""
    module = ""
    probe = ""

    def available(self):
        if importlib.util.find_spec(self.module) is None:
            return False, f"{self.module} is not installed (pip install {self.package})"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
        try:
            proc = subprocess.run(
                [sys.executable, "-c", self.probe],
                capture_output=True,
                text=True,
                env=env,
                timeout=PROBE_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            return False, f"probing {self.module} took over {PROBE_TIMEOUT} s"
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            error = lines[-1] if lines else f"exit status {proc.returncode}"
            return False, f"{self.probe.strip()!r} failed: {error}"
        return False, (
            f"{self.probe.strip()!r} works with this TensorFlow, but this adapter only probes "
            f"{self.package} (no run is written yet)"
        )

    def run(self, fixture, dtype):
        raise NotImplementedError(f"{self.package} is only probed")


class TensorFlowSimilarityAdapter(_ProbedAdapter):
    name = "tensorflow-similarity"
    package = "tensorflow-similarity"
    module = "tensorflow_similarity"
    probe = "from tensorflow_similarity.losses import TripletLoss; TripletLoss(margin=0.2)"


class TensorFlowAddonsAdapter(_ProbedAdapter):
    name = "tensorflow-addons"
    package = "tensorflow-addons"
    module = "tensorflow_addons"
    probe = "import tensorflow_addons as tfa; tfa.losses.TripletSemiHardLoss(margin=0.2)"
