"""The bench's loss rows: one training step of a loss class, with a full cross-batch memory
of `N` samples or (`N = 0`) without one.

The stream is made of P x K batches: `per_class` samples of each of `B / per_class`
distinct classes drawn from `MEMORY_CLASSES` (or more when one batch needs more), and
embeddings drawn from N(0, 1/D). The memory is filled before any step, untimed, with the
last `N` samples of the batches before the first, in the state that
`tftriplet.BackupAndRestore` restores. Each step then takes the next batch of the stream:
the loss mines it against the batch and the full memory, its gradient is taken, and the
batch enters the memory, which stays full.

Every backend runs the loss's own training step: a `tf.function` (with `jit_compile`)
under TensorFlow, eager autograd under PyTorch, and under JAX a `jax.jit` that carries the
memory's variables through a `keras.StatelessScope` (docs/memory.md).
"""

from __future__ import annotations

import itertools

from tftriplet_cli.bench.methods import sync_loss_and_gradient

#: The classes a memory row's labels are drawn from: about those of a mid-sized retrieval
#: training set, so that an anchor has tens of positives in a memory of 65536.
MEMORY_CLASSES = 1000
#: The methods measured with a memory: the loss classes, named as `tftriplet demo
#: --strategy` names them (the keys of `tftriplet_cli.demo.model.STRATEGIES`, listed here
#: so that the bench's parent process, which reads this, need not import Keras).
LOSS_METHODS = ("batch_all", "batch_hard", "semi_hard")


def memory_inputs(batch_size, memory, dim, per_class, steps, seed=0):
    """`(batches, memory_labels, memory_embeddings)`: `steps` batches `(labels int32 (B,),
    embeddings float32 (B, D))` of the stream, and the `memory` samples before them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    earlier = [_pk_batch(rng, batch_size, dim, per_class) for _ in range(-(-memory // batch_size))]
    labels = np.concatenate([y for y, _ in earlier] or [np.zeros(0)])[-memory:].astype("int64")
    embeddings = np.concatenate([x for _, x in earlier] or [np.zeros((0, dim), "float32")])
    embeddings = embeddings[-memory:]
    return [_pk_batch(rng, batch_size, dim, per_class) for _ in range(steps)], labels, embeddings


def _pk_batch(rng, batch_size, dim, per_class):
    """One batch of the stream: distinct classes, `per_class` samples of each."""
    import numpy as np

    p = -(-batch_size // max(per_class, 1))
    classes = rng.choice(max(MEMORY_CLASSES, p), size=p, replace=False)
    labels = np.repeat(classes, per_class)[:batch_size].astype("int32")
    embeddings = (rng.standard_normal((batch_size, dim)) / np.sqrt(dim)).astype("float32")
    return labels, embeddings


def filled_loss(method, memory, batch_size, margin, labels, embeddings):
    """The loss of `method` with a memory of `memory` samples, holding `labels` and
    `embeddings` (the memory's full state, as a backup restores it); without a memory for
    `memory=0`."""
    import numpy as np

    from tftriplet.memory.store import label_dtype
    from tftriplet_cli.demo.model import STRATEGIES

    loss = STRATEGIES[method](margin=margin, memory_size=memory)
    if not memory:
        return loss
    loss.memory.build(embeddings.shape[1], "float32")
    loss.memory.resume_restore({
        "built": True, "embeddings": embeddings, "labels": labels.astype(label_dtype()),
        "filled": np.int32(memory), "steps": np.int32(-(-memory // batch_size)),
    })
    return loss


def loss_step(method, backend, memory, batch_size, dim, per_class, margin, jit, steps):
    """`(step, sync)`: each `step()` is one training step of `method` with a full memory of
    `memory` samples (none for 0) on the next of `steps` batches, returning `(loss,
    gradient)`."""
    batches, labels, embeddings = memory_inputs(batch_size, memory, dim, per_class, steps)
    loss = filled_loss(method, memory, batch_size, margin, labels, embeddings)
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=jit)
        def train_step(y, x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = loss(y, x)
            return value, tape.gradient(value, x)

        tensors = [(tf.constant(y), tf.constant(x)) for y, x in batches]
        stream = itertools.cycle(tensors)
        return (lambda: train_step(*next(stream))), sync_loss_and_gradient
    if backend == "jax":
        return _jax_step(loss, batches), sync_loss_and_gradient
    import torch

    stream = itertools.cycle(batches)

    def torch_step():
        y, x = next(stream)
        x = torch.as_tensor(x).requires_grad_(True)
        value = loss(torch.as_tensor(y), x)
        value.backward()
        return value, x.grad

    return torch_step, sync_loss_and_gradient


def _jax_step(loss, batches):
    """A `jax.jit` training step that passes the memory's variables in and their new
    values out, through a `keras.StatelessScope`; the new values are carried to the next
    step."""
    import jax
    import keras

    variables = [] if loss.memory is None else loss.memory.variables

    def loss_and_state(x, y, state):
        with keras.StatelessScope(state_mapping=list(zip(variables, state, strict=True))) as s:
            value = loss(y, x)
            new_state = [s.get_current_value(v) for v in variables]
        return value, new_state

    fn = jax.jit(jax.value_and_grad(loss_and_state, has_aux=True))
    carried = {"state": [v.value for v in variables]}
    stream = itertools.cycle([(jax.numpy.asarray(x), jax.numpy.asarray(y)) for y, x in batches])

    def step():
        (value, carried["state"]), grad = fn(*next(stream), carried["state"])
        return value, grad

    return step

