"""`pk_dataset`: P classes x K samples batches as a `tf.data` pipeline (see
`tftriplet.samplers`), drawn with stateless random ops keyed by `(seed, epoch, step)`."""

from __future__ import annotations

import threading
import warnings

import numpy as np

from tftriplet.pk_checks import NOT_THIS_SAMPLER, check_pk, sampler_config


def pk_dataset(
    x,
    y=None,
    *,
    classes_per_batch,
    samples_per_class,
    batches_per_epoch=None,
    seed=0,
):
    """A `tf.data.Dataset` of `(x, y)` batches with `P` classes x `K` samples.

    The same batch layout as `PKBatches`, sampled inside the `tf.data` graph with
    stateless random ops: each batch takes `P` distinct classes uniformly at random and
    `K` distinct samples of each; a class with fewer than `K` samples gives all of them,
    padded to `K` by drawing from them again with replacement (such repeats are positive
    pairs at distance 0). A `UserWarning` names those classes.

    Batch `step` of epoch `e` is a pure function of `(seed, e, step)` (the random
    ops' key is `seed` and `e` folded with `step`). Each pass over the dataset is
    one epoch: on its own the first pass is epoch 0, the next epoch 1, and so on, so
    `model.fit` draws new batches each epoch and every run with the same `seed` draws
    the same ones. Under `tftriplet.BackupAndRestore` the pass is `fit`'s epoch, started
    where a restored backup left off (docs/training.md, "Resuming"). Without
    `batches_per_epoch` one pass is endless: batch `g` of it is step `g` of the
    pass's epoch.

    Args:
        x: array `(N, ...)` of inputs (any dtype `tf.constant` takes, e.g. file paths
            to decode after sampling), or a finite `tf.data.Dataset` whose elements are
            single samples `(x_i, y_i)`; it is read once into memory.
        y: integer class ids `(N,)` or `(N, 1)`, within the int32 range (the batches
            hold them as int32); `None` when `x` is a dataset.
        classes_per_batch: `P`, at least 2 and at most the number of classes.
        samples_per_class: `K`, at least 2.
        batches_per_epoch: the number of batches in one pass; `None` for an endless
            dataset (then give `model.fit` its `steps_per_epoch`).
        seed: integer seed.

    Returns:
        A `tf.data.Dataset` of `(x_batch, y_batch)`: `x_batch` `(P * K, ...)` with
            the dtype of `x`, `y_batch` `(P * K,)` int32, classes in consecutive runs of
            `K`.

    Example:
        ```python
        ds = tftriplet.pk_dataset(x, y, classes_per_batch=8, samples_per_class=4,
                                  batches_per_epoch=100, seed=0)
        model.fit(ds, epochs=10)
        ```

    Reference:
        Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person
        Re-Identification", 2017, section 2 (P x K batches).
    """
    import tensorflow as tf

    x, y = _arrays_of(x, y)
    x, y, classes = check_pk(x, y, classes_per_batch, samples_per_class)
    if batches_per_epoch is not None and batches_per_epoch < 1:
        raise ValueError(f"batches_per_epoch must be >= 1 or None; got {batches_per_epoch}.")
    p, k, seed = int(classes_per_batch), int(samples_per_class), int(seed)
    n = None if batches_per_epoch is None else int(batches_per_epoch)
    sampler = _PassSampler(sampler_config("pk_dataset", x, y, classes, p, k, n, seed), n)
    batch = _batch_function(tf, x, y, classes, p, k, seed)

    def steps_of_pass(epoch, first_step):
        last = tf.constant(np.iinfo(np.int64).max, tf.int64) if n is None else first_step + n
        return tf.data.Dataset.range(first_step, last).map(lambda step: (epoch, step))

    scalar = tf.TensorSpec((), tf.int64)
    passes = tf.data.Dataset.from_generator(sampler.start_pass, output_signature=(scalar,) * 2)
    steps = passes.flat_map(steps_of_pass).apply(
        tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY if n is None else n)
    )
    dataset = steps.map(batch).prefetch(tf.data.AUTOTUNE)
    dataset._tftriplet_sampler = sampler  # found by tftriplet.BackupAndRestore
    return dataset


def _arrays_of(x, y):
    """`(x, y)` as given, or read from a dataset of `(x_i, y_i)` elements."""
    import tensorflow as tf

    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError(
                "pass either arrays x and y, or a dataset of (x, y) elements as x with y=None; "
                "got a dataset and y."
            )
        return _read_dataset(x)
    if y is None:
        raise ValueError("y (class ids) is required when x is an array.")
    return x, y


def _batch_function(tf, x, y, classes, p, k, seed):
    """`batch(epoch, step) -> (x_batch, y_batch)`, stateless in `(seed, epoch, step)`."""
    _, class_of_row, counts = np.unique(y, return_inverse=True, return_counts=True)
    undersized = [c.item() for c, n in zip(classes, counts, strict=True) if n < k]
    if undersized:
        warnings.warn(
            f"pk_dataset: {len(undersized)} class(es) have fewer than K={k} samples and are "
            f"padded to K by drawing their samples again with replacement: {undersized}",
            UserWarning,
            stacklevel=3,
        )
    # members[c, :counts[c]]: the rows of class c (the rest of the row is padding).
    width = int(counts.max())
    members = np.zeros((len(classes), width), dtype=np.int32)
    order = np.argsort(class_of_row, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for c, (start, n) in enumerate(zip(starts, counts, strict=True)):
        members[c, :n] = order[start : start + n]
    x_table, y_table = tf.constant(x), tf.constant(y.astype(np.int32))
    members, counts = tf.constant(members), tf.constant(counts.astype(np.int32))
    num_classes = len(classes)

    def rows_of_batch(epoch, step):
        key = tf.random.experimental.stateless_fold_in(
            tf.stack([tf.constant(seed, tf.int64), epoch]), step
        )
        stream = tf.random.experimental.stateless_split(key, num=3)
        # P distinct classes: the P largest of C uniform keys.
        chosen = tf.math.top_k(tf.random.stateless_uniform([num_classes], stream[0]), p).indices
        n = tf.gather(counts, chosen)[:, None]  # (P, 1)
        # A random order of each chosen class's members, padding last (keys of -1).
        slot = tf.range(width)[None, :]
        keys = tf.random.stateless_uniform([p, width], stream[1])
        perm = tf.math.top_k(tf.where(slot < n, keys, -1.0), width).indices
        # Slot j < n takes the j-th member of that order; slots from n on (a class smaller
        # than K) take a uniformly drawn member again.
        uniform = tf.random.stateless_uniform([p, k], stream[2])
        again = tf.cast(uniform * tf.cast(n, "float32"), "int32")
        j = tf.range(k)[None, :]
        position = tf.where(j < n, tf.minimum(j, width - 1), tf.minimum(again, n - 1))
        picked = tf.gather(perm, position, batch_dims=1)
        rows = tf.gather(tf.gather(members, chosen), picked, batch_dims=1)
        return tf.reshape(rows, [p * k])

    def batch(epoch, step):
        rows = rows_of_batch(epoch, step)
        return tf.gather(x_table, rows), tf.gather(y_table, rows)

    return batch


class _PassSampler:
    """Where each pass of a `pk_dataset` starts: `(epoch, first step)`.

    On its own, pass `i` is epoch `i` from step 0. `tftriplet.BackupAndRestore` pins
    the position before each epoch of `fit` (`resume_start_epoch`); every pass started
    while pinned starts there, however many passes Keras starts.
    """

    resume_key = "sampler"

    def __init__(self, config, batches_per_epoch):
        self._config = config
        self.batches_per_epoch = batches_per_epoch
        self._lock = threading.Lock()
        self._next_epoch = 0
        self._pin = None  # (epoch, first step)
        self._passes = 0  # passes started since the pin

    def start_pass(self):
        """The generator of one pass's `(epoch, first step)` (`from_generator`)."""
        with self._lock:
            if self._pin is None:
                position = (self._next_epoch, 0)
                self._next_epoch += 1
            else:
                position = self._pin
                self._passes += 1
        yield np.int64(position[0]), np.int64(position[1])

    @property
    def steps_per_epoch(self):
        return self.batches_per_epoch

    def resume_config(self):
        return self._config

    def resume_start_epoch(self, epoch, first_step, steps_per_epoch):
        """Pin the passes to epoch `epoch` from `first_step`; return after how many
        steps `fit` must end the epoch (a pass always holds `batches_per_epoch`
        batches), or None.

        An endless dataset's one pass serves every epoch of `fit` (with
        `steps_per_epoch`): it is pinned to epoch 0 at global step `epoch *
        steps_per_epoch + first_step` when `fit` starts, and later pins are never read.
        """
        with self._lock:
            if self.batches_per_epoch is None:
                if self._pin is None:
                    self._pin = (0, int(epoch) * steps_per_epoch + int(first_step))
                    self._passes = 0
            else:
                self._pin = (int(epoch), int(first_step))
                self._passes = 0
        if first_step == 0:
            return None
        return steps_per_epoch - int(first_step)

    def resume_verify(self):
        # A pass started since the pin serves this epoch. (fit keeps a finite dataset's
        # pass across epochs when given steps_per_epoch: then its batches are stale.)
        if self._passes == 0:
            raise ValueError(
                NOT_THIS_SAMPLER + " With a finite pk_dataset, give fit no steps_per_epoch: "
                "each epoch must be a new pass."
            )

    def resume_end(self):
        with self._lock:  # on its own again, from the epoch after the last one pinned
            if self._pin is not None:
                self._next_epoch = self._pin[0] + 1
            self._pin = None


def _read_dataset(dataset):
    """All `(x, y)` elements of a finite dataset of single samples, as two arrays."""
    import tensorflow as tf

    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(
            f"the dataset's elements must be (x, y) pairs of single samples; got element_spec "
            f"{spec}."
        )
    if spec[1].shape.rank not in (0, None) and spec[1].shape != (1,):
        raise ValueError(
            f"the dataset's y must be one class id per element (shape ()); got shape "
            f"{spec[1].shape}: a batched dataset? call .unbatch() first."
        )
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError("the dataset is infinite (.repeat()?); pass a finite one.")
    xs, ys = [], []
    for x_block, y_block in dataset.batch(1024).as_numpy_iterator():
        xs.append(x_block)
        ys.append(np.reshape(y_block, (-1,)))
    if not xs:
        raise ValueError("the dataset is empty.")
    return np.concatenate(xs), np.concatenate(ys)
