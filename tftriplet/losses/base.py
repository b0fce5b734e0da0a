"""What every triplet loss shares: the Keras `Loss` plumbing and the reduction of its sums.

A strategy module (`tftriplet.losses.batch_all`, `tftriplet.losses.batch_hard`,
`tftriplet.losses.semi_hard`) subclasses `TripletLoss` and implements one method on
standardized inputs, `sums`: the `tftriplet.statistics.TripletSums` of some anchors mined
against the (valid columns of the) batch. The loss of a batch (`compute`), one replica's
share of the global-batch loss under `cross_replica=True` (`anchor_terms`) and the loss
of a batch mined against a cross-batch memory (`tftriplet.losses.pooled`) all follow
from it.
"""

from __future__ import annotations

import keras
from keras import ops

from tftriplet import distributed
from tftriplet.backend_ops import with_gradient_of
from tftriplet.config import distance_config
from tftriplet.distances import resolve_distance
from tftriplet.inputs import standardize_inputs
from tftriplet.losses import pooled
from tftriplet.margins import check_margin
from tftriplet.memory import CrossBatchMemory, check_memory_size, check_warmup
from tftriplet.statistics import mean, normalising_count, over_positive
from tftriplet.statistics import statistics as statistics_dict


class TripletLoss(keras.losses.Loss):
    """Base class of the triplet losses: label handling, configuration and Keras plumbing.

    `y_true` holds integer class ids of shape `(B,)` or `(B, 1)` and `y_pred` the
    embeddings `(B, D)`. Keras' `Loss.__call__` converts `y_true` to the loss dtype
    (float32), which merges class ids above 2**24; this class keeps `y_true` in its own
    dtype instead. The loss is one scalar for the batch: a triple couples three samples, so
    `sample_weight` has no per-sample meaning and is rejected.

    A subclass sets `strategy` and implements `sums(labels, embeddings, anchor_index,
    valid)` on standardized inputs: the `TripletSums` of the anchors `anchor_index` (all
    when None) mined against the batch's `valid` columns (all when None).

    Args:
        margin: the margin `m`, at least 0.
        soft: use the soft margin `softplus(d_ap - d_an)` instead of the hinge (only
            where the subclass sets `supports_soft`).
        cross_replica: under `tf.distribute`, mine each replica's anchors against the
            global batch (`tftriplet.distributed`).
        distance: `"euclidean"` (default), `"squared_euclidean"` or `"cosine"`.
        squared: shorthand for `distance="squared_euclidean"`.
        memory_size: mine each batch against the `memory_size` most recent samples of
            earlier batches too, a cross-batch memory (`tftriplet.memory`,
            docs/memory.md); 0 (default): the batch alone.
        memory_warmup: training steps before the memory is used (default 0).
        name: the loss name.
        reduction: accepted for Keras compatibility; the loss is one scalar per batch, so
            every reduction returns it unchanged.
        dtype: the dtype of the returned loss (it is computed in float32 at least).
    """

    #: The strategy's name (`tftriplet.STRATEGIES`).
    strategy = None
    #: What its statistics call the terms it counts (`statistics`).
    count_name = None
    supports_soft = False

    def __init__(
        self,
        margin=0.2,
        *,
        soft=False,
        cross_replica=False,
        distance=None,
        squared=False,
        memory_size=0,
        memory_warmup=0,
        name=None,
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if soft and not self.supports_soft:
            raise ValueError(f"{type(self).__name__} has no soft-margin form; got soft=True.")
        self.margin = check_margin(margin)
        self.soft = bool(soft)
        implements = type(self).sums is not TripletLoss.sums or (
            type(self).anchor_terms is not TripletLoss.anchor_terms)
        if cross_replica and not implements:
            raise ValueError(
                f"{type(self).__name__} does not implement anchor_terms() (nor sums()), so "
                "cross_replica=True is not available for it; got cross_replica=True."
            )
        self.cross_replica = bool(cross_replica)
        self.distance = resolve_distance(distance, squared)
        self.squared = self.distance == "squared_euclidean"
        self.memory_size = check_memory_size(memory_size)
        self.memory_warmup = check_warmup(memory_warmup, self.memory_size)
        #: The `tftriplet.memory.CrossBatchMemory`, or None without `memory_size`.
        self.memory = None
        if self.memory_size:
            # the name given, never Keras' numbered one: the backup's state key is made of it
            base = name or f"{self.strategy}_triplet_loss"
            self.memory = CrossBatchMemory(self.memory_size, self.memory_warmup,
                                           name=f"{base}_memory")

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError(
                f"{type(self).__name__} is a batch-level loss (each triple couples three "
                "samples), so per-sample `sample_weight` is not supported; got "
                f"sample_weight={sample_weight!r}. Pass sample_weight=None (and no "
                "class_weight)."
            )
        with keras.name_scope(self.name):
            return self.call(y_true, y_pred)

    def call(self, y_true, y_pred):
        """The loss of this replica's batch, in `self.dtype`.

        Outside a multi-replica `tf.distribute` context: `compute` on the batch. Inside
        one, with `cross_replica`: this replica's share of the global-batch loss (the
        shares sum to it); without: the replica's own loss divided by the number of
        replicas, Keras' convention for its own losses.
        """
        labels, embeddings = standardize_inputs(y_true, y_pred)
        context = distributed.replica_context()
        if context is not None and not self.cross_replica:
            pooled.check_cross_replica(self, context)
            loss = self.compute(labels, embeddings)
            loss = loss / ops.cast(context.num_replicas_in_sync, loss.dtype)
            return ops.cast(loss, self.dtype)
        anchor_index = None
        if context is not None:
            labels, embeddings, anchor_index = distributed.gather_global_batch(
                context, labels, embeddings
            )
        labels, embeddings, anchor_index, valid, pool = pooled.mined_rows(
            self, labels, embeddings, anchor_index
        )
        if context is None:
            loss = self.compute(labels, embeddings, anchor_index, valid)
        else:
            loss = pooled.replica_share(
                context, *self.anchor_terms(labels, embeddings, anchor_index, valid)
            )
        if pool is not None:
            self.memory.push(pool)
        return ops.cast(loss, self.dtype)

    @property
    def by_positive(self):
        """Whether the loss is the mean over the positive terms (`tftriplet.statistics`)."""
        return over_positive(self.strategy, self.soft)

    def sums(self, labels, embeddings, anchor_index=None, valid=None):
        """The `TripletSums` of the anchors `anchor_index` (int32 `(A,)`; None: every
        row) mined against standardized `labels` `(B,)` and `embeddings` `(B, D)`, their
        positives and negatives among the `valid` rows (bool `(B,)`; None: every row)."""
        raise NotImplementedError

    def _sums(self, labels, embeddings, anchor_index, valid):
        """`sums`, given `valid` only when there is one: a subclass written before the
        validity mask (`sums(labels, embeddings, anchor_index=None)`) works without a
        memory."""
        if valid is None:
            return self.sums(labels, embeddings, anchor_index)
        return self.sums(labels, embeddings, anchor_index, valid)

    def compute(self, labels, embeddings, anchor_index=None, valid=None):
        """The scalar loss of standardized `labels` `(B,)` and `embeddings` `(B, D)`
        (anchors and valid rows as for `sums`)."""
        sums = self._sums(labels, embeddings, anchor_index, valid)
        return mean(sums, self.by_positive, embeddings)

    def anchor_terms(self, labels, embeddings, anchor_index, valid=None):
        """`(numerator, count)`: the terms of the anchors `anchor_index` summed, with their
        gradient, and their share of the normaliser, so that the shares of all anchors
        summed and divided by `max(count, 1)` are the loss."""
        sums = self._sums(labels, embeddings, anchor_index, valid)
        numerator = sums.terms
        if sums.gradient is not None:
            numerator = with_gradient_of(numerator, sums.gradient, embeddings)
        return numerator, normalising_count(sums, self.by_positive)

    def statistics(self, y_true, y_pred):
        """The loss and its counts for a batch, as this loss computes them, on one device.

        The dict of the strategy's statistics function (`loss`, the counts, and for
        batch-all `fraction_positive`). With a memory, the batch is mined against the
        memory as it is now, which is not changed: call it before the loss.

        Args:
            y_true: class ids `(B,)` or `(B, 1)`.
            y_pred: embeddings `(B, D)`.

        Returns:
            A dict of scalars.
        """
        labels, embeddings = standardize_inputs(y_true, y_pred)
        anchor_index = valid = None
        if self.memory is not None:
            pool = self.memory.pool(labels, embeddings)
            labels, embeddings = pool.labels, pool.embeddings
            anchor_index, valid = pool.anchor_index, pool.valid
        sums = self._sums(labels, embeddings, anchor_index, valid)
        return statistics_dict(sums, self.by_positive, self.count_name, embeddings,
                               fraction=self.strategy == "batch_all")

    def get_config(self):
        config = super().get_config()
        config.update({"margin": self.margin, "soft": self.soft,
                       "cross_replica": self.cross_replica, **distance_config(self.distance),
                       "memory_size": self.memory_size, "memory_warmup": self.memory_warmup})
        return config
