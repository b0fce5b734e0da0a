"""The memory in `model.fit`: its state in the model's state, and only training steps use it.

Keras' trainers carry the model's variables through each step: TensorFlow and PyTorch
update them in place, JAX's `fit` is stateless and passes them in and out of its compiled
step (trainable, non-trainable, optimizer and metric variables), so a variable it does not
know keeps the value it had when the step was compiled and an update to it is dropped. A
loss is not part of that state. `attach_memory(model)` makes the memories of the model's
losses part of it, as metrics of the model (`model.metrics`): JAX's step then reads and
returns them like any metric's variables (its `StatelessScope` maps them), on every backend
the same way. A memory used inside a `StatelessScope` that does not carry it raises
(`check_state_is_threaded`) instead of silently forgetting.

A loss cannot tell a training step from `evaluate` (or `fit`'s validation): Keras passes
`training` to `model.compute_loss`, not to the loss. `attach_memory` wraps the model's
`compute_loss` so that the losses know: evaluation then computes each batch's own loss and
leaves the memory as it is. Called outside (a custom training loop), a loss with a memory
takes every call for a training step.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading

from keras import backend

_MODE = threading.local()


@contextlib.contextmanager
def training_mode(training):
    """Within: losses with a memory use it (and update it) only if `training` is true."""
    previous = getattr(_MODE, "training", None)
    _MODE.training = bool(training)
    try:
        yield
    finally:
        _MODE.training = previous


def in_training():
    """False inside `training_mode(False)` (evaluation), True otherwise."""
    return getattr(_MODE, "training", None) is not False


def attach_memory(model):
    """Make the cross-batch memories of `model.loss` part of the model's training state.

    Call it after `model.compile`, before `fit`, on every backend: it is what lets JAX's
    compiled `fit` step carry the memory from step to step (without it, JAX's `fit` raises
    an error naming this function), and on every backend it keeps `evaluate` and `fit`'s
    validation from using or changing the memory: they compute each batch's own loss.
    Calling it again (after another `compile`) attaches the new losses' memories; one of
    an earlier loss stays among `model.metrics`, unchanged from then on.

    Args:
        model: a compiled `keras.Model` whose loss (or one of whose losses) was made with
            `memory_size > 0`.

    Returns:
        The memories attached, a list of `tftriplet.memory.CrossBatchMemory`.

    Example:
        ```python
        model.compile(optimizer="adam",
                      loss=tftriplet.BatchHardTripletLoss(memory_size=4096))
        memories = tftriplet.attach_memory(model)
        model.fit(batches, epochs=10)  # doctest: +SKIP
        ```
    """
    memories = [loss.memory for loss in model_losses(model)
                if getattr(loss, "memory", None) is not None]
    if not memories:
        raise ValueError(
            "tftriplet.attach_memory found no loss with a memory in model.loss "
            f"({model.loss!r}): compile the model with a tftriplet loss made with "
            "memory_size > 0 first."
        )
    # A tracked attribute: Keras adds metrics set on a model to `model.metrics`.
    model.tftriplet_memories = memories
    if not getattr(model.compute_loss, "tftriplet_training_mode", False):
        model.compute_loss = _with_training_mode(model.compute_loss)
        # Keras passes `training` only to a compute_loss that it saw take it when the model
        # was made; the wrapper takes it whatever the model's own method does.
        model._compute_loss_has_training_arg = True
    return memories


def model_losses(model):
    """The losses `model.compile` was given, as a list (one loss, a list or a dict's values)."""
    losses = getattr(model, "loss", None)
    if isinstance(losses, dict):
        return list(losses.values())
    return list(losses) if isinstance(losses, (list, tuple)) else [losses]


def _with_training_mode(compute_loss):
    """`compute_loss` that runs in `training_mode(training)`."""
    takes_training = "training" in inspect.signature(compute_loss).parameters

    @functools.wraps(compute_loss)
    def wrapped(*args, training=True, **kwargs):
        if takes_training:
            kwargs["training"] = training
        with training_mode(training):
            return compute_loss(*args, **kwargs)

    wrapped.tftriplet_training_mode = True
    return wrapped


def check_state_is_threaded(variables, values, name):
    """Under JAX, raise unless an update of `variables` would reach the next step.

    Inside a `keras.StatelessScope` (JAX's `fit` step, a user's own stateless step) the
    variables must be in its state mapping; inside a JAX transformation (`jax.jit`,
    `jax.grad`) without one, updates cannot be kept at all.
    """
    if backend.backend() != "jax":
        return
    import jax

    scope = _stateless_scope()
    if scope is not None:
        if any(scope.get_current_value(v) is None for v in variables):
            raise ValueError(
                f"the memory {name!r} is used in a stateless step that does not carry its "
                "variables, so its updates would be dropped. Under model.fit, call "
                "tftriplet.attach_memory(model) after compile; in your own stateless step, "
                "put loss.memory.variables in the StatelessScope's state_mapping and carry "
                "their new values to the next step."
            )
    elif any(isinstance(v, jax.core.Tracer) for v in values):
        raise ValueError(
            f"the memory {name!r} is used inside a JAX transformation (jax.jit, jax.grad) "
            "without a keras.StatelessScope: its updates could not be kept. Map "
            "loss.memory.variables in a StatelessScope and carry their new values "
            "(tftriplet.attach_memory does it for model.fit)."
        )


def _stateless_scope():
    """Keras' current `StatelessScope`, or None."""
    from keras.src.backend.common.stateless_scope import get_stateless_scope

    return get_stateless_scope()
