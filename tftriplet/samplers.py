"""P classes x K samples batches, the batch layout triplet losses need.

A random batch of B samples from C classes often holds no positive pair for many anchors
(FaceNet section 3.2; Hermans et al. 2017 section 2): a triplet loss then sees few or no
valid triples. Each batch here draws `P` distinct classes and `K` samples of each, so
every anchor has `K - 1` positives and `(P - 1) * K` negatives.

References:
    Schroff et al., "FaceNet", CVPR 2015, https://arxiv.org/abs/1503.03832 ;
    Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person Re-Identification",
    2017, https://arxiv.org/abs/1703.07737
"""

from __future__ import annotations

import keras
import numpy as np

from tftriplet.pk_checks import NOT_THIS_SAMPLER, check_pk, sampler_config


class PKBatches(keras.utils.PyDataset):
    """A `keras.utils.PyDataset` of `(x, y)` batches with `P` classes x `K` samples.

    Batch `index` of epoch `e` is drawn from `numpy.random.default_rng([seed, e,
    index])`, so it depends only on the seed, the epoch and the index: the same whatever
    order or worker asks for it. Within a batch the `P` classes are distinct; each class
    gives `K` distinct samples when it has at least `K`. A class with fewer than `K`
    samples gives all of them, padded to `K` by drawing from them again with replacement
    (such repeats are positive pairs at distance 0); `undersized_classes` lists those
    classes.

    On its own, `model.fit` moves it to the next epoch through `on_epoch_end` and may
    ask for the indices of an epoch in any order (`fit(shuffle=True)`, the default).
    Under `tftriplet.BackupAndRestore` the epoch is `fit`'s epoch, and the `i`-th batch
    `fit` consumes in an epoch is batch `i`, whatever index it asks for, so that a
    restored run sees the batches the uninterrupted run saw (docs/training.md, "Resuming").

    Args:
        x: array `(N, ...)` of inputs.
        y: integer class ids `(N,)` or `(N, 1)`, within the int32 range (the batches
            hold them as int32).
        classes_per_batch: `P`, at least 2 (negatives need a second class) and at most
            the number of classes.
        samples_per_class: `K`, at least 2 (positives need a second sample).
        batches_per_epoch: the number of batches in one epoch.
        seed: integer seed.
        **kwargs: passed to `keras.utils.PyDataset` (`workers`, `use_multiprocessing`,
            `max_queue_size`).

    Yields:
        `(x_batch, y_batch)` with `P * K` rows, classes in consecutive runs of `K`;
            `y_batch` is int32.
    """

    resume_key = "sampler"

    def __init__(
        self, x, y, classes_per_batch, samples_per_class, batches_per_epoch, seed=0, **kwargs
    ):
        super().__init__(**kwargs)
        x, y, classes = check_pk(x, y, classes_per_batch, samples_per_class)
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
        self._pinned = None  # (first step, batches served) while BackupAndRestore drives it
        self._config = None

    def __len__(self):
        if self._pinned is not None:  # an epoch resumed mid-way: the batches left
            return self.batches_per_epoch - self._pinned[0]
        return self.batches_per_epoch

    def batch_indices(self, index, epoch=None):
        """Row indices of batch `index` of `epoch` (default: the current epoch)."""
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
        if self._pinned is not None:  # the next batch of the epoch, in the order consumed
            first, served = self._pinned
            self._pinned = (first, served + 1)
            index = first + served
        rows = self.batch_indices(index)
        return self.x[rows], self.y[rows].astype(np.int32)

    def on_epoch_end(self):
        self.epoch += 1

    # The state protocol of tftriplet.BackupAndRestore (tftriplet/resume.py).

    @property
    def steps_per_epoch(self):
        return self.batches_per_epoch

    def resume_config(self):
        if self._config is None:
            self._config = sampler_config(
                "PKBatches", self.x, self.y, self.classes, self.classes_per_batch,
                self.samples_per_class, self.batches_per_epoch, self.seed,
            )
        return self._config

    def resume_start_epoch(self, epoch, first_step, steps_per_epoch):
        """Serve epoch `epoch` from batch `first_step` on, in the order `fit` asks;
        the epoch ends when its batches run out (returns None: no early stop needed)."""
        if self.workers > 1 or (self.workers > 0 and self.use_multiprocessing):
            raise ValueError(
                "tftriplet.BackupAndRestore serves PKBatches' batches in the order fit "
                "consumes them, which needs one worker in the main process: workers=1, "
                f"use_multiprocessing=False; got workers={self.workers}, "
                f"use_multiprocessing={self.use_multiprocessing}."
            )
        self.epoch = int(epoch)
        self._pinned = (int(first_step), 0)
        return None

    def resume_verify(self):
        if self._pinned is None or self._pinned[1] == 0:
            raise ValueError(NOT_THIS_SAMPLER)

    def resume_end(self):
        self._pinned = None


# The tf.data form lives in its own module; it is part of this one's API.
from tftriplet.pk_tfdata import pk_dataset  # noqa: E402

__all__ = ["PKBatches", "pk_dataset"]
