"""What every triplet loss shares: the Keras ``Loss`` plumbing and the per-anchor reductions.

A strategy module (:mod:`~tftriplet.losses.batch_all`, :mod:`~tftriplet.losses.batch_hard`,
:mod:`~tftriplet.losses.semi_hard`) subclasses :class:`TripletLoss` and implements two
methods on standardized inputs: ``compute`` (the loss of a batch) and ``anchor_terms`` (the
loss summed over some anchors and their share of the normaliser, which is what lets
``cross_replica=True`` mine the global batch).
"""

from __future__ import annotations

import keras
from keras import ops

from tftriplet import distributed
from tftriplet.distances import resolve_distance
from tftriplet.inputs import standardize_inputs
from tftriplet.mining import softplus

#: The package name under which the losses and metrics are registered for serialization.
PACKAGE = "tftriplet"


def check_margin(margin):
    """``margin`` as a float, refusing a negative one."""
    margin = float(margin)
    if margin < 0:
        raise ValueError(f"margin must be >= 0; got {margin}.")
    return margin


def normalize(numerator, denominator):
    """``numerator / max(denominator, 1)``: 0, never NaN, when nothing was counted."""
    return numerator / ops.maximum(denominator, 1.0)


def per_anchor_terms(diff, mask, margin, soft):
    """The terms of ``diff = d_ap - d_an`` where ``mask``, with a leading anchor axis.

    The term is ``max(diff + margin, 0)``, or ``softplus(diff)`` if ``soft``; 0 where the
    mask is False. Returns ``(terms, counted, positive)``, the last two as 0/1 in the dtype
    of ``diff``.
    """
    terms = softplus(diff) if soft else ops.relu(diff + margin)
    terms = ops.where(mask, terms, ops.zeros_like(terms))
    positive = ops.logical_and(mask, ops.greater(diff + margin, 0.0))
    return terms, ops.cast(mask, diff.dtype), ops.cast(positive, diff.dtype)


def mean_of_terms(parts, count_name):
    """``loss`` (the mean of the counted terms) and the counts, from per-anchor parts."""
    terms, counted, positive = (ops.sum(p) for p in parts)
    return {"loss": normalize(terms, counted), count_name: counted, "num_positive": positive}


def sum_of_terms(parts):
    """``(sum of terms, count)`` of per-anchor parts: an ``anchor_terms`` result."""
    terms, counted, _ = parts
    return ops.sum(terms), ops.sum(counted)


class TripletLoss(keras.losses.Loss):
    """Base class of the triplet losses: label handling, configuration and Keras plumbing.

    ``y_true`` holds integer class ids of shape ``(B,)`` or ``(B, 1)`` and ``y_pred`` the
    embeddings ``(B, D)``. Keras' ``Loss.__call__`` converts ``y_true`` to the loss dtype
    (float32), which merges class ids above 2**24; this class keeps ``y_true`` in its own
    dtype instead. The loss is one scalar for the batch: a triple couples three samples, so
    ``sample_weight`` has no per-sample meaning and is rejected.

    A subclass implements, on standardized inputs:

    - ``compute(labels, embeddings)``: the scalar loss of the batch;
    - ``anchor_terms(labels, embeddings, anchor_index)``: the loss summed over the anchors
      ``anchor_index`` (mined against the whole batch) and their share of the normaliser (a
      count), so that ``sum of shares / max(total count, 1)`` is the loss. With it the
      subclass supports ``cross_replica=True``.

    Args:
        margin: the margin ``m``, at least 0.
        soft: use the soft margin ``softplus(d_ap - d_an)`` instead of the hinge (only
            where the subclass sets ``supports_soft``).
        cross_replica: under ``tf.distribute``, mine each replica's anchors against the
            global batch (:mod:`tftriplet.distributed`).
        distance: ``"euclidean"`` (default), ``"squared_euclidean"`` or ``"cosine"``.
        squared: shorthand for ``distance="squared_euclidean"``.
        name: the loss name.
        reduction: accepted for Keras compatibility; the loss is one scalar per batch, so
            every reduction returns it unchanged.
        dtype: the dtype of the returned loss (it is computed in float32 at least).
    """

    supports_soft = False

    def __init__(
        self,
        margin=0.2,
        *,
        soft=False,
        cross_replica=False,
        distance=None,
        squared=False,
        name=None,
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if soft and not self.supports_soft:
            raise ValueError(f"{type(self).__name__} has no soft-margin form; got soft=True.")
        self.margin = check_margin(margin)
        self.soft = bool(soft)
        if cross_replica and type(self).anchor_terms is TripletLoss.anchor_terms:
            raise ValueError(
                f"{type(self).__name__} does not implement anchor_terms(), so "
                "cross_replica=True is not available for it; got cross_replica=True."
            )
        self.cross_replica = bool(cross_replica)
        self.distance = resolve_distance(distance, squared)
        self.squared = self.distance == "squared_euclidean"

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
        """The loss of this replica's batch, in ``self.dtype``.

        Outside a multi-replica ``tf.distribute`` context: ``compute`` on the batch. Inside
        one, with ``cross_replica``: this replica's share of the global-batch loss (the
        shares sum to it); without: the replica's own loss divided by the number of
        replicas, Keras' convention for its own losses.
        """
        labels, embeddings = standardize_inputs(y_true, y_pred)
        context = distributed.replica_context()
        if context is None:
            loss = self.compute(labels, embeddings)
        elif self.cross_replica:
            global_labels, global_embeddings, local_index = distributed.gather_global_batch(
                context, labels, embeddings
            )
            numerator, denominator = self.anchor_terms(
                global_labels, global_embeddings, local_index
            )
            # The normaliser is a count: no gradient flows through it (as on one device).
            denominator = ops.stop_gradient(ops.cast(denominator, numerator.dtype))
            loss = normalize(numerator, distributed.sum_over_replicas(context, denominator))
        else:
            loss = self.compute(labels, embeddings)
            loss = loss / ops.cast(context.num_replicas_in_sync, loss.dtype)
        return ops.cast(loss, self.dtype)

    def compute(self, labels, embeddings):
        """The scalar loss of standardized ``labels`` ``(B,)`` and ``embeddings`` ``(B, D)``."""
        raise NotImplementedError

    def anchor_terms(self, labels, embeddings, anchor_index):
        """``(numerator, denominator)``: the loss summed over the anchors ``anchor_index``
        (int32 ``(A,)``, mined against all of ``labels`` and ``embeddings``) and their share
        of the normaliser."""
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "margin": self.margin,
                "soft": self.soft,
                "cross_replica": self.cross_replica,
                "distance": self.distance,
                "squared": self.squared,
            }
        )
        return config
