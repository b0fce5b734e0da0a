"""Subprocess side of `tftriplet_conformance.adapters.keras_backends`.

Reads `{"fixtures": [...], "modes": {mode: [dtype, ...]}}` as JSON on stdin, computes
every fixture with the Keras backend of this process (`KERAS_BACKEND`), gradients with
the framework's own autodiff, and writes `{name: {dtype: {mode: outputs}}}` to stdout.
"""

from __future__ import annotations

import json
import sys

import keras
import numpy as np

from tftriplet_conformance.guard import describe
from tftriplet_conformance.variants import keras_callables


def _outputs(loss, gradient, statistics, as_numpy):
    out = {k: float(as_numpy(v)) for k, v in statistics.items() if k != "loss"}
    out["loss"] = float(as_numpy(loss))
    out["gradient"] = as_numpy(gradient).tolist()
    return out


class TensorFlowRunner:
    def __init__(self):
        import tensorflow as tf

        self.tf = tf

    def inputs(self, fixture, dtype):
        tf = self.tf
        labels = tf.constant(np.array(fixture["inputs"]["labels"], dtype=np.int64))
        embeddings = np.array(fixture["inputs"]["embeddings"], dtype=np.float64)
        return labels, tf.cast(tf.constant(embeddings), dtype)

    def as_numpy(self, x):
        return np.asarray(x.numpy()).astype(np.float64)

    def run(self, fixture, dtype, mode):
        tf = self.tf
        loss_fn, statistics_fn = keras_callables(fixture, dtype)

        def compute(labels, embeddings):
            with tf.GradientTape() as tape:
                tape.watch(embeddings)
                loss = loss_fn(labels, embeddings)
            gradient = tape.gradient(loss, embeddings)
            if gradient is None:  # the loss does not depend on the embeddings
                gradient = tf.zeros_like(embeddings)
            return loss, gradient, statistics_fn(labels, embeddings)

        if mode == "function":
            compute = tf.function(compute)
        elif mode == "xla":
            compute = tf.function(compute, jit_compile=True)
        loss, gradient, statistics = compute(*self.inputs(fixture, dtype))
        return _outputs(loss, gradient, statistics, self.as_numpy)


class JaxRunner:
    def __init__(self):
        import jax

        if not jax.config.jax_enable_x64:
            raise RuntimeError("the jax worker needs JAX_ENABLE_X64=1 (float64, int64 labels)")
        self.jax = jax

    def as_numpy(self, x):
        return np.asarray(x.astype("float64"))

    def run(self, fixture, dtype, mode):
        jax = self.jax
        import jax.numpy as jnp

        loss_fn, statistics_fn = keras_callables(fixture, dtype)
        labels = jnp.asarray(np.array(fixture["inputs"]["labels"], dtype=np.int64))
        embeddings = jnp.asarray(np.array(fixture["inputs"]["embeddings"], np.float64))
        embeddings = embeddings.astype(dtype)
        value_and_grad = jax.value_and_grad(lambda e: loss_fn(labels, e))
        statistics = lambda e: statistics_fn(labels, e)  # noqa: E731
        if mode == "jit":
            value_and_grad, statistics = jax.jit(value_and_grad), jax.jit(statistics)
        loss, gradient = value_and_grad(embeddings)
        outputs = _outputs(loss, gradient, statistics(embeddings), self.as_numpy)
        jax.clear_caches()  # each fixture has its own shapes: keep memory flat
        return outputs


class TorchRunner:
    def __init__(self):
        import torch

        self.torch = torch

    def as_numpy(self, x):
        return x.detach().to(self.torch.float64).cpu().numpy()

    def run(self, fixture, dtype, mode):
        torch = self.torch
        loss_fn, statistics_fn = keras_callables(fixture, dtype)
        labels = torch.tensor(np.array(fixture["inputs"]["labels"], dtype=np.int64))
        embeddings = torch.tensor(np.array(fixture["inputs"]["embeddings"], np.float64))
        embeddings = embeddings.to(getattr(torch, dtype)).requires_grad_(True)
        loss = loss_fn(labels, embeddings)
        loss.backward()
        gradient = embeddings.grad
        if gradient is None:
            gradient = torch.zeros_like(embeddings)
        with torch.no_grad():
            statistics = statistics_fn(labels, embeddings)
        return _outputs(loss, gradient, statistics, self.as_numpy)


RUNNERS = {"tensorflow": TensorFlowRunner, "jax": JaxRunner, "torch": TorchRunner}


def main():
    request = json.load(sys.stdin)
    runner = RUNNERS[keras.backend.backend()]()
    results = {}
    for fixture in request["fixtures"]:
        per_dtype = results.setdefault(fixture["name"], {})
        for mode, dtypes in request["modes"].items():
            for dtype in dtypes:
                try:
                    outputs = runner.run(fixture, dtype, mode)
                except Exception as err:  # reported per cell; the worker goes on
                    outputs = {"error": describe(err)[:500]}  # with the file and line
                per_dtype.setdefault(dtype, {})[mode] = outputs
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
