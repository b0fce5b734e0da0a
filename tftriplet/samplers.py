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

import keras
import numpy as np


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
        x = np.asarray(x)
        y = np.asarray(y)
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
