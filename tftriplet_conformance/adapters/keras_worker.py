"""Subprocess side of `tftriplet_conformance.adapters.keras_backends`.

Reads `{"fixtures": [...], "modes": {mode: [dtype, ...]}}` as JSON on stdin, computes
every fixture with the Keras backend of this process (`KERAS_BACKEND`), gradients with
the framework's own autodiff, and writes `{name: {dtype: {mode: outputs}}}` to stdout.

A memory fixture runs its steps in order through one loss with a memory, in each mode
(TensorFlow's `tf.function` and XLA keep the memory in its variables; under `jax.jit`
the step carries them through a `keras.StatelessScope`, as `fit` does), and its outputs
are `{"steps": [outputs of each step]}`: each step's statistics are taken first (they
leave the memory as it is), then the loss and its gradient, which update it.
"""

from __future__ import annotations

import json
import sys
from functools import partial

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

    def inputs(self, inputs, dtype):
        """`(labels, embeddings)` tensors of a fixture's (or a step's) `inputs`."""
        tf = self.tf
        labels = tf.constant(np.array(inputs["labels"], dtype=np.int64))
        embeddings = np.array(inputs["embeddings"], dtype=np.float64)
        return labels, tf.cast(tf.constant(embeddings), dtype)

    def as_numpy(self, x):
        return np.asarray(x.numpy()).astype(np.float64)

    def run(self, fixture, dtype, mode):
        loss_fn, statistics_fn = keras_callables(fixture, dtype)
        compute = self.compiled(loss_fn, statistics_fn, mode)
        if "memory" in fixture:
            return memory_steps(fixture, lambda step: compute(*self.inputs(step, dtype)),
                                self.as_numpy)
        loss, gradient, statistics = compute(*self.inputs(fixture["inputs"], dtype))
        return _outputs(loss, gradient, statistics, self.as_numpy)

    def compiled(self, loss_fn, statistics_fn, mode):
        """`(labels, embeddings) -> (loss, gradient, statistics)` in `mode`."""
        tf = self.tf

        def compute(labels, embeddings):
            statistics = statistics_fn(labels, embeddings)  # first: a memory is not changed
            with tf.GradientTape() as tape:
                tape.watch(embeddings)
                loss = loss_fn(labels, embeddings)
            gradient = tape.gradient(loss, embeddings)
            if gradient is None:  # the loss does not depend on the embeddings
                gradient = tf.zeros_like(embeddings)
            return loss, gradient, statistics

        if mode == "function":
            return tf.function(compute)
        if mode == "xla":
            return tf.function(compute, jit_compile=True)
        return compute


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
        if "memory" in fixture:
            return self.run_memory(fixture, dtype, loss_fn, statistics_fn)
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

    def run_memory(self, fixture, dtype, loss_fn, statistics_fn):
        """The steps under `jax.jit`, the memory's variables carried from step to step."""
        jax = self.jax
        from keras import StatelessScope

        from tftriplet.inputs import compute_dtype_for

        dim = len(fixture["inputs"]["steps"][0]["embeddings"][0])
        loss_fn.memory.build(dim, compute_dtype_for(dtype))
        variables = loss_fn.memory.variables

        @jax.jit
        def step(state, labels, embeddings):
            mapping = list(zip(variables, state, strict=True))
            with StatelessScope(state_mapping=mapping):
                statistics = statistics_fn(labels, embeddings)

            def value(e):
                with StatelessScope(state_mapping=mapping) as scope:
                    loss = loss_fn(labels, e)
                return loss, [scope.get_current_value(v) for v in variables]

            (loss, state), gradient = jax.value_and_grad(value, has_aux=True)(embeddings)
            return (loss, gradient, statistics), state

        carried = {"state": [v.value for v in variables]}

        def one(inputs):
            labels = np.array(inputs["labels"], dtype=np.int64)
            embeddings = np.array(inputs["embeddings"], np.float64).astype(dtype)
            results, carried["state"] = step(carried["state"], labels, embeddings)
            return results

        outputs = memory_steps(fixture, one, self.as_numpy)
        jax.clear_caches()
        return outputs


class TorchRunner:
    def __init__(self):
        import torch

        self.torch = torch

    def as_numpy(self, x):
        return x.detach().to(self.torch.float64).cpu().numpy()

    def run(self, fixture, dtype, mode):
        loss_fn, statistics_fn = keras_callables(fixture, dtype)
        compute = partial(self.compute, loss_fn, statistics_fn, dtype)
        if "memory" in fixture:
            return memory_steps(fixture, compute, self.as_numpy)
        return _outputs(*compute(fixture["inputs"]), self.as_numpy)

    def compute(self, loss_fn, statistics_fn, dtype, inputs):
        """`(loss, gradient, statistics)` of one batch (`inputs`, a fixture's)."""
        torch = self.torch
        labels = torch.tensor(np.array(inputs["labels"], dtype=np.int64))
        embeddings = torch.tensor(np.array(inputs["embeddings"], np.float64))
        embeddings = embeddings.to(getattr(torch, dtype)).requires_grad_(True)
        with torch.no_grad():  # first: a memory is not changed
            statistics = statistics_fn(labels, embeddings)
        loss = loss_fn(labels, embeddings)
        loss.backward()
        gradient = embeddings.grad
        if gradient is None:
            gradient = torch.zeros_like(embeddings)
        return loss, gradient, statistics


def memory_steps(fixture, compute, as_numpy):
    """`{"steps": [...]}`: `compute(step_inputs) -> (loss, gradient, statistics)` on each
    step of a memory fixture, in order."""
    steps = fixture["inputs"]["steps"]
    return {"steps": [_outputs(*compute(step), as_numpy) for step in steps]}


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
