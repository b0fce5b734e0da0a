"""The cross-batch memory's state: the most recent embeddings and labels, first in, first out.

A `CrossBatchMemory` holds `size` rows in fixed-size variables, so that every step has
the same shapes (what XLA and `jax.jit` need): the embeddings `(size, D)`, their labels
`(size,)` (integers, never through a float), how many rows are filled and how many
training steps it has seen. The rows are kept oldest first; the filled
ones are the last `filled`. Labels are held as int64 (a cast that keeps every integer
id apart, unsigned ones too; floats holding integers, as the losses accept them, are
converted to those integers): int32 under JAX without 64-bit integers, where labels are
int32 already. A batch `(b, D)` is mined against the pool `[batch; memory]`
of `b + size` rows, the empty rows marked invalid (`Pool.valid`), and then enters the
memory: `memory <- [memory; batch][-size:]`.

It is a `keras.metrics.Metric` only so that Keras' trainers carry its variables as the
model's metric state once `tftriplet.attach_memory` tracks it on the model: JAX's
`fit` threads that state through its compiled step (`tftriplet.memory.training`). It
reports nothing (`result()` is empty) and `reset_state` leaves it as it is (Keras resets
metrics every epoch; the memory spans epochs): `clear` empties it.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import keras
import numpy as np
from keras import backend, ops

from tftriplet.memory.training import check_state_is_threaded


class Pool(NamedTuple):
    """A batch and the memory together, and the memory as it was read.

    Attributes:
        labels: `(b + size,)`, the batch's labels then the memory's.
        embeddings: `(b + size, D)`, the batch's embeddings then the memory's (no gradient).
        valid: bool `(b + size,)`: every batch row, and the memory's filled rows.
        anchor_index: int32 `(b,)`, the batch's rows: the anchors.
        filled: int32 scalar, the memory's filled rows before this batch.
        steps: int32 scalar, the training steps it had seen before this batch.
    """

    labels: object
    embeddings: object
    valid: object
    anchor_index: object
    filled: object
    steps: object


def check_memory_size(size):
    """`size` as an int if it is an integer >= 0, else a `ValueError` (a bool, a float, a
    negative number)."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise ValueError(
            f"memory_size must be a whole number of samples (an int >= 0, 0 for no memory); "
            f"got {size!r} ({type(size).__name__})."
        )
    if size < 0:
        raise ValueError(f"memory_size must be >= 0 (0: no memory); got {size}.")
    return int(size)


def check_warmup(warmup, size):
    """`warmup` as an int if it is an integer >= 0 (and 0 without a memory)."""
    if isinstance(warmup, bool) or not isinstance(warmup, numbers.Integral) or warmup < 0:
        raise ValueError(
            f"memory_warmup must be a number of training steps (an int >= 0); got {warmup!r}."
        )
    if warmup and not size:
        raise ValueError(
            f"memory_warmup={warmup} needs a memory: give memory_size > 0 too (got 0)."
        )
    return int(warmup)


def _snapshot(variable):
    """The variable's value now, as a tensor of its own: a later `assign` must not change
    it (a TensorFlow read in a graph, a copy of PyTorch's storage)."""
    return ops.copy(ops.convert_to_tensor(variable))


class CrossBatchMemory(keras.metrics.Metric):
    """The `size` most recent samples a loss has seen: embeddings, labels, fill, steps.

    A triplet loss made with `memory_size=N` owns one (`loss.memory`); you rarely need its
    methods beyond `clear`, `contents`, `filled` and `steps` (docs/memory.md).

    Args:
        size: the number of samples it holds (an int >= 1).
        warmup: training steps before the memory is used: the first `warmup` batches are
            mined alone and do not enter it.
        name: its name (the state key of `tftriplet.BackupAndRestore` is made from it).

    Example:
        ```python
        loss = tftriplet.BatchHardTripletLoss(memory_size=4096)
        loss.memory.size  # 4096
        ```

    Reference:
        Wang, Zhang, Huang, Scott, "Cross-Batch Memory for Embedding Learning", CVPR 2020,
        https://arxiv.org/abs/1912.06798
    """

    def __init__(self, size, warmup=0, name="cross_batch_memory"):
        super().__init__(name=name)
        self.size = check_memory_size(size)
        if self.size < 1:
            raise ValueError(f"a CrossBatchMemory holds at least 1 sample; got size={size}.")
        self.warmup = check_warmup(warmup, self.size)
        self.spec = None  # (embedding dimension, embedding dtype) once built
        self._restored = None  # state restored before the variables exist

    # ------------------------------------------------------------------ the variables

    def build(self, embedding_dim, dtype):
        """Create the variables for embeddings of `embedding_dim` values in `dtype` (done
        by the first batch; a restored state fills them)."""
        spec = (int(embedding_dim), backend.standardize_dtype(dtype))
        state = self._restored or {}
        if state:
            _check_restored(state, spec, self.name)
        labels_dtype = label_dtype()
        shapes = {"embeddings": ((self.size, spec[0]), spec[1]),
                  "labels": ((self.size,), labels_dtype),
                  "filled": ((), "int32"), "steps": ((), "int32")}
        for key, (shape, variable_dtype) in shapes.items():
            start = state.get(key)
            initializer = "zeros" if start is None else _constant(start)
            variable = self.add_variable(shape, initializer, dtype=variable_dtype,
                                         aggregation="only_first_replica", name=key)
            setattr(self, f"_{key}", variable)
        self.spec, self._restored = spec, None
        # what each step's `pool` needs of the size alone, made once
        self._slot_index, self._empty_rows = _pool_constants(self.size, labels_dtype)

    def check_batch(self, embeddings):
        """Build on the first batch; refuse a batch the memory cannot hold, naming what
        differs from the first batch (embedding dimension or dtype)."""
        dim = embeddings.shape[-1]
        if dim is None:
            raise ValueError(
                "a cross-batch memory needs the embedding dimension when the graph is traced; "
                f"got embeddings of shape {tuple(embeddings.shape)}."
            )
        spec = (int(dim), backend.standardize_dtype(embeddings.dtype))
        if self.spec is None:
            self.build(*spec)
            return
        for what, held, got in zip(("embedding dimension", "embedding dtype"), self.spec, spec,
                                   strict=True):
            if held != got:
                raise ValueError(
                    f"the {what} changed between steps: the memory {self.name!r} holds "
                    f"{held} (from its first batch), this batch has {got}. Keep it the same "
                    "for every batch, or clear the memory with a new loss."
                )

    # ------------------------------------------------------------------ one step

    def pool(self, labels, embeddings):
        """The `Pool` of a batch (`labels` `(b,)`, `embeddings` `(b, D)`, standardized)
        and the memory as it is now; the memory is not changed."""
        self.check_batch(embeddings)
        check_state_is_threaded(self.variables, (labels, embeddings), self.name)
        labels = ops.cast(labels, self._labels.dtype)
        held = ops.stop_gradient(_snapshot(self._embeddings))
        held_labels = _snapshot(self._labels)
        filled, steps = _snapshot(self._filled), _snapshot(self._steps)
        b = ops.shape(labels)[0]
        slots = ops.greater_equal(self._slot_index, self.size - filled)
        valid = ops.concatenate([ops.ones((b,), "bool"), slots], axis=0)
        # Empty rows are never positives or negatives (`valid`); distinct labels keep them
        # out of any real class, whose size sets the cost of the counting kernels.
        held_labels = ops.where(slots, held_labels, self._empty_rows)
        return Pool(ops.concatenate([labels, held_labels], axis=0),
                    ops.concatenate([embeddings, held], axis=0), valid,
                    ops.arange(b, dtype="int32"), filled, steps)

    def push(self, pool):
        """After the loss: the batch of `pool` (its `Pool`, holding the memory as it was
        read) enters the memory, unless it is still warming up; the step is counted (a
        batch of no samples is not a step)."""
        b = ops.shape(pool.anchor_index)[0]
        held, held_labels = pool.embeddings[b:], pool.labels[b:]
        enter = ops.greater_equal(pool.steps, self.warmup)
        # [memory; batch] = the pool rotated by b rows; its last `size` rows stay
        rotated = ops.concatenate([held, ops.stop_gradient(pool.embeddings[:b])], axis=0)
        new = rotated[-self.size:]
        new_labels = ops.concatenate([held_labels, pool.labels[:b]], axis=0)[-self.size:]
        filled = ops.minimum(pool.filled + ops.cast(b, "int32"), self.size)
        self._embeddings.assign(ops.where(enter, new, held))
        self._labels.assign(ops.where(enter, new_labels, held_labels))
        self._filled.assign(ops.where(enter, filled, pool.filled))
        # an empty batch is no step (TensorFlow's fit makes one when a resumed epoch's
        # data runs out: tftriplet.BackupAndRestore)
        self._steps.assign(pool.steps + ops.cast(ops.greater(b, 0), "int32"))

    # ------------------------------------------------------------------ for users

    def _value(self, key):
        """A variable's value as NumPy: a restored state not built yet, else 0 or empty
        before the first batch."""
        if self.spec is not None:
            return ops.convert_to_numpy(getattr(self, f"_{key}"))
        if self._restored:
            return self._restored[key]
        empty = {"embeddings": np.zeros((self.size, 0), np.float32),
                 "labels": np.zeros((self.size,), np.int64)}
        return empty.get(key, np.zeros((), np.int32))

    @property
    def filled(self):
        """How many rows hold a sample (0 before the first batch)."""
        return int(self._value("filled"))

    @property
    def steps(self):
        """How many training steps the memory has seen (warm-up steps included)."""
        return int(self._value("steps"))

    def contents(self):
        """`(labels, embeddings)` of the samples held, oldest first, as NumPy arrays."""
        start = self.size - self.filled
        return self._value("labels")[start:], self._value("embeddings")[start:]

    def clear(self):
        """Empty the memory and restart its step count (the warm-up runs again)."""
        if self.spec is None:
            self._restored = None
            return
        for variable in self.variables:
            variable.assign(ops.zeros(variable.shape, variable.dtype))

    # ------------------------------------------------------------------ keras.metrics.Metric

    def update_state(self, *args, **kwargs):
        """Nothing: the loss updates the memory (`push`)."""

    def result(self):
        """Nothing to report: `{}` adds nothing to the logs."""
        return {}

    def reset_state(self):
        """Left as it is: Keras resets metrics every epoch, the memory spans epochs."""

    def get_config(self):
        return {"size": self.size, "warmup": self.warmup, "name": self.name}

    # ------------------------------------------------------------------ tftriplet.BackupAndRestore

    @property
    def resume_key(self):
        return f"memory:{self.name}"

    def resume_config(self):
        return {k: v for k, v in self.get_config().items() if k != "name"}

    def resume_state(self):
        if self.spec is None and not self._restored:
            return {"built": False}
        return {"built": True, **{key: self._value(key) for key in STATE}}

    def resume_restore(self, state):
        if not state.get("built"):
            self.clear()
            return
        state = {k: np.asarray(v) for k, v in state.items() if k != "built"}
        if self.spec is None:  # the first batch builds the variables from it
            self._restored = state
            return
        _check_restored(state, self.spec, self.name)
        for key, value in state.items():
            getattr(self, f"_{key}").assign(value)


#: The variables, by name.
STATE = ("embeddings", "labels", "filled", "steps")


def label_dtype():
    """How the memory holds labels: int64, or int32 under JAX without 64-bit integers."""
    if backend.backend() == "jax":
        import jax

        if not jax.config.jax_enable_x64:
            return "int32"
    return "int64"


def _pool_constants(size, dtype):
    """The slot indices `0..size-1` (int32) and `size` distinct labels in `dtype` for empty
    rows, from the smallest integer up, as NumPy arrays: a traced step (TensorFlow, JAX)
    holds them as constants, and a tensor made while building (in one traced graph, or
    under PyTorch on the device of Keras' symbolic build) could not be used in later steps."""
    slots = np.arange(size, dtype=np.int32)
    return slots, (np.iinfo(dtype).min + np.arange(size, dtype=np.int64)).astype(dtype)


def _constant(value):
    """An initializer that gives `value` (a restored array)."""
    return lambda shape, dtype=None: ops.cast(ops.convert_to_tensor(value), dtype)


def _check_restored(state, spec, name):
    """Refuse a restored state of another embedding dimension or dtype."""
    embeddings = state["embeddings"]
    held = (int(embeddings.shape[-1]), backend.standardize_dtype(embeddings.dtype))
    if held != spec:
        raise ValueError(
            f"the backup of the memory {name!r} holds embeddings of dimension {held[0]} in "
            f"{held[1]}; this run gives embeddings of dimension {spec[0]} in {spec[1]}."
        )
