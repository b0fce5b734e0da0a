"""P classes x K samples batches, the batch layout triplet losses need.

A random batch of B samples from C classes often holds no positive pair for many anchors
(FaceNet section 3.2; Hermans et al. 2017 section 2): a triplet loss then sees few or no
valid triples. Each batch here draws ``P`` distinct classes and ``K`` samples of each, so
every anchor has ``K - 1`` positives and ``(P - 1) * K`` negatives.

References:
    Schroff et al., "FaceNet", CVPR 2015, https://arxiv.org/abs/1503.03832 ;
    Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person Re-Identification",
    2017, https://arxiv.org/abs/1703.07737
"""

from __future__ import annotations

import warnings

import keras
import numpy as np


def _check_pk(x, y, classes_per_batch, samples_per_class):
    """Check ``(x, y, P, K)``; return ``x``, ``y`` as arrays and the sorted classes."""
    x = np.asarray(x)
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of class ids; got shape {y.shape}.")
    if y.dtype.kind not in "iu":
        raise TypeError(f"y must hold integer class ids; got dtype {y.dtype}.")
    if x.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x must have one row per label: y has {y.shape[0]} labels, x has shape {x.shape}."
        )
    classes = np.unique(y)
    if not 2 <= classes_per_batch <= len(classes):
        raise ValueError(
            f"classes_per_batch (P) must be in 2..{len(classes)} (the number of classes "
            f"in y); got {classes_per_batch}."
        )
    if samples_per_class < 2:
        raise ValueError(
            f"samples_per_class (K) must be >= 2 so that anchors have positives; got "
            f"{samples_per_class}."
        )
    return x, y, classes


class PKBatches(keras.utils.PyDataset):
    """A ``keras.utils.PyDataset`` of ``(x, y)`` batches with ``P`` classes x ``K`` samples.

    Batch ``index`` of epoch ``e`` is drawn from ``numpy.random.default_rng([seed, e,
    index])``, so it depends only on the seed, the epoch and the index: the same whatever
    order or worker asks for it. Within a batch the ``P`` classes are distinct; each class
    gives ``K`` distinct samples when it has at least ``K``. A class with fewer than ``K``
    samples gives all of them, padded to ``K`` by drawing from them again with replacement
    (such repeats are positive pairs at distance 0); :attr:`undersized_classes` lists those
    classes.

    Args:
        x: array ``(N, ...)`` of inputs.
        y: integer class ids ``(N,)``.
        classes_per_batch: ``P``, at least 2 (negatives need a second class) and at most
            the number of classes.
        samples_per_class: ``K``, at least 2 (positives need a second sample).
        batches_per_epoch: the number of batches in one epoch.
        seed: integer seed.
        **kwargs: passed to ``keras.utils.PyDataset`` (``workers``, ``use_multiprocessing``,
            ``max_queue_size``).

    Yields:
        ``(x_batch, y_batch)`` with ``P * K`` rows, classes in consecutive runs of ``K``;
        ``y_batch`` is int32.
    """

    def __init__(
        self, x, y, classes_per_batch, samples_per_class, batches_per_epoch, seed=0, **kwargs
    ):
        super().__init__(**kwargs)
        x, y, classes = _check_pk(x, y, classes_per_batch, samples_per_class)
        if batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch must be >= 1; got {batches_per_epoch}.")
        self.x = x
        self.y = y
        self.classes = classes
        self.classes_per_batch = int(classes_per_batch)
        self.samples_per_class = int(samples_per_class)
        self.batches_per_epoch = int(batches_per_epoch)
        self.seed = int(seed)
        self.epoch = 0
        self._members = [np.flatnonzero(y == c) for c in classes]
        self.undersized_classes = [
            c.item()
            for c, m in zip(classes, self._members, strict=True)
            if len(m) < samples_per_class
        ]

    def __len__(self):
        return self.batches_per_epoch

    def batch_indices(self, index, epoch=None):
        """Row indices of batch ``index`` of ``epoch`` (default: the current epoch)."""
        if not 0 <= index < self.batches_per_epoch:
            raise IndexError(f"batch index {index} out of range 0..{self.batches_per_epoch - 1}")
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch, index])
        chosen = rng.choice(len(self.classes), size=self.classes_per_batch, replace=False)
        k = self.samples_per_class
        parts = []
        for c in chosen:
            members = self._members[c]
            if len(members) >= k:
                parts.append(rng.choice(members, size=k, replace=False))
            else:
                extra = rng.choice(members, size=k - len(members), replace=True)
                parts.append(np.concatenate([rng.permutation(members), extra]))
        return np.concatenate(parts)

    def __getitem__(self, index):
        rows = self.batch_indices(index)
        return self.x[rows], self.y[rows].astype(np.int32)

    def on_epoch_end(self):
        self.epoch += 1


def pk_dataset(
    x,
    y=None,
    *,
    classes_per_batch,
    samples_per_class,
    batches_per_epoch=None,
    seed=0,
):
    """A ``tf.data.Dataset`` of ``(x, y)`` batches with ``P`` classes x ``K`` samples.

    The same batch layout as :class:`PKBatches`, sampled inside the ``tf.data`` graph with
    stateless random ops: each batch takes ``P`` distinct classes uniformly at random and
    ``K`` distinct samples of each; a class with fewer than ``K`` samples gives all of them,
    padded to ``K`` by drawing from them again with replacement (such repeats are positive
    pairs at distance 0). A ``UserWarning`` names those classes.

    The random draws come from ``tf.data.Dataset.random(seed=seed,
    rerandomize_each_iteration=True)``: each pass over the dataset (each epoch of
    ``model.fit``) draws new batches, and the sequence of passes is the same in every run
    with the same ``seed`` (and the same TensorFlow global seed, which
    ``keras.utils.set_random_seed`` sets, when one is set).

    Args:
        x: array ``(N, ...)`` of inputs (any dtype ``tf.constant`` takes, e.g. file paths
            to decode after sampling), or a finite ``tf.data.Dataset`` whose elements are
            single samples ``(x_i, y_i)``; it is read once into memory.
        y: integer class ids ``(N,)``; ``None`` when ``x`` is a dataset.
        classes_per_batch: ``P``, at least 2 and at most the number of classes.
        samples_per_class: ``K``, at least 2.
        batches_per_epoch: the number of batches in one pass; ``None`` for an endless
            dataset (then give ``model.fit`` its ``steps_per_epoch``).
        seed: integer seed.

    Returns:
        A ``tf.data.Dataset`` of ``(x_batch, y_batch)``: ``x_batch`` ``(P * K, ...)`` with
        the dtype of ``x``, ``y_batch`` ``(P * K,)`` int32, classes in consecutive runs of
        ``K``.

    Example:
        >>> ds = tftriplet.pk_dataset(x, y, classes_per_batch=8, samples_per_class=4,
        ...                           batches_per_epoch=100, seed=0)
        >>> model.fit(ds, epochs=10)  # doctest: +SKIP

    Reference:
        Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person
        Re-Identification", 2017, section 2 (P x K batches).
    """
    import tensorflow as tf

    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError(
                "pass either arrays x and y, or a dataset of (x, y) elements as x with y=None; "
                "got a dataset and y."
            )
        x, y = _read_dataset(x)
    elif y is None:
        raise ValueError("y (class ids) is required when x is an array.")
    x, y, classes = _check_pk(x, y, classes_per_batch, samples_per_class)
    if batches_per_epoch is not None and batches_per_epoch < 1:
        raise ValueError(f"batches_per_epoch must be >= 1 or None; got {batches_per_epoch}.")
    p, k = int(classes_per_batch), int(samples_per_class)
    _, class_of_row, counts = np.unique(y, return_inverse=True, return_counts=True)
    undersized = [c.item() for c, n in zip(classes, counts, strict=True) if n < k]
    if undersized:
        warnings.warn(
            f"pk_dataset: {len(undersized)} class(es) have fewer than K={k} samples and are "
            f"padded to K by drawing their samples again with replacement: {undersized}",
            UserWarning,
            stacklevel=2,
        )
    # members[c, :counts[c]]: the rows of class c (the rest of the row is padding).
    width = int(counts.max())
    members = np.zeros((len(classes), width), dtype=np.int32)
    order = np.argsort(class_of_row, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for c, (start, n) in enumerate(zip(starts, counts, strict=True)):
        members[c, :n] = order[start : start + n]

    x_table = tf.constant(x)
    y_table = tf.constant(y.astype(np.int32))
    members = tf.constant(members)
    counts = tf.constant(counts.astype(np.int32))
    num_classes = len(classes)
    seed = int(seed)

    def rows_of_batch(draw):
        stream = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(seed, tf.int64), draw]), num=3
        )
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

    def batch(draw):
        rows = rows_of_batch(draw)
        return tf.gather(x_table, rows), tf.gather(y_table, rows)

    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    if batches_per_epoch is not None:
        draws = draws.take(int(batches_per_epoch))
    return draws.map(batch).prefetch(tf.data.AUTOTUNE)


def _read_dataset(dataset):
    """All ``(x, y)`` elements of a finite dataset of single samples, as two arrays."""
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
