"""Triplet losses: functional forms and Keras ``Loss`` subclasses.

Everything here is written with ``keras.ops`` so that one class runs under Keras 3's
TensorFlow (default), JAX and PyTorch backends, eagerly, in ``tf.function`` and under XLA.
"""

from __future__ import annotations

import keras
from keras import ops

from tftriplet import distributed
from tftriplet.batch_all_sorted import batch_all_sorted, check_method, resolve_method
from tftriplet.distances import pairwise_distances, resolve_distance
from tftriplet.inputs import standardize_inputs
from tftriplet.masks import anchor_negative_mask, anchor_pair_masks, anchor_positive_mask
from tftriplet.mining import softplus

PACKAGE = "tftriplet"


def batch_all_triplet_statistics(
    labels, embeddings, margin=0.2, squared=False, distance=None, soft=False, method="auto"
):
    """Loss and counts of the masked batch-all triplet loss.

    Like :func:`batch_all_triplet_loss`, but returns a dict with ``loss``,
    ``fraction_positive``, ``num_positive`` and ``num_valid`` (counts as floats, exact
    below 2**24 triples in float32).
    """
    labels, embeddings = standardize_inputs(labels, embeddings)
    distance = resolve_distance(distance, squared)
    return _batch_all(labels, embeddings, margin, distance, soft, method)


def _batch_all(labels, embeddings, margin, distance, soft, method, with_gradient=True):
    """Dispatch to the dense ``B^3`` or the sorted ``B^2`` form. Inputs standardized.

    The sorted form covers the hinge with (squared) Euclidean distances; ``"auto"`` uses the
    dense form for the soft margin and the cosine distance.
    """
    sortable = not soft and distance in ("euclidean", "squared_euclidean")
    if method == "sorted" and not sortable:
        raise ValueError(
            "method='sorted' computes the hinge with distance='euclidean' or "
            f"'squared_euclidean'; got distance={distance!r}, soft={soft!r}. Use "
            "method='dense' (or 'auto') for these."
        )
    if not sortable or resolve_method(method, embeddings.shape[0]) == "dense":
        return _batch_all_dense(labels, embeddings, margin, distance, soft)
    squared = distance == "squared_euclidean"
    return batch_all_sorted(labels, embeddings, margin, squared, with_gradient)


def _batch_all_dense(labels, embeddings, margin, distance, soft=False):
    """The seed program's algorithm on (B, B, B) tensors. Inputs already standardized."""
    distances = pairwise_distances(embeddings, distance=distance)
    positive, negative = anchor_positive_mask(labels), anchor_negative_mask(labels)
    terms, num_positive = _dense_terms(distances, positive, negative, margin, soft)
    num_valid = _num_valid_triples(positive, negative, distances.dtype)
    # The seed divides by (count + 1e-12); max(count, 1) is the same for every integer
    # count and, unlike adding 1e-12, is not lost to float32 rounding. The soft margin
    # (Hermans et al.) is a mean over all valid triples.
    denominator = num_valid if soft else num_positive
    loss = ops.sum(terms) / ops.maximum(denominator, 1.0)
    return {
        "loss": loss,
        "fraction_positive": num_positive / ops.maximum(num_valid, 1.0),
        "num_positive": num_positive,
        "num_valid": num_valid,
    }


def _dense_terms(distances, positive, negative, margin, soft):
    """Per-triple terms ``(A, B, B)`` and the number of positive hinges among them.

    ``terms[i, j, k]`` is ``relu((d_ij + m) - d_ik)`` (``softplus(d_ij - d_ik)`` when
    ``soft``) for a valid triple and 0 otherwise; the count is that of valid triples with
    a positive hinge, soft or not (the ``fraction_positive`` statistic).

    The masks are folded into the ``(A, B)`` rows: ``d_ij + m`` is ``-inf`` where ``j`` is
    not a positive and ``d_ik`` is ``+inf`` where ``k`` is not a negative, so an invalid
    triple's difference is ``-inf``, its term 0 and its gradient 0. No ``(B, B, B)`` mask
    or ``where`` is built: one subtraction, the hinge, the sums and the count (each fresh
    ``B^3`` tensor costs as much as the arithmetic on it; README, "Large batches").
    ``(d_ij + m) - d_ik > 0`` exactly when ``d_ik < fl(d_ij + m)``, the comparison the
    sorted form counts, so on the same distances the two forms count the same triples.
    """
    shifted = distances if soft else distances + margin
    anchor_positive = ops.where(positive, shifted, float("-inf"))
    anchor_negative = ops.where(negative, distances, float("inf"))
    diff = ops.expand_dims(anchor_positive, 2) - ops.expand_dims(anchor_negative, 1)
    if soft:
        return softplus(diff), _count_positive(ops.relu(diff + margin))
    # relu, not maximum(hinge, 0): its gradient at a hinge of exactly 0 is 0 on every
    # backend (a tie is not a positive triple), where maximum passes 1 (TF) or 1/2.
    hinge = ops.relu(diff)
    return hinge, _count_positive(hinge)


def _count_positive(hinge):
    """The number of strictly positive entries of a non-negative tensor, in its dtype."""
    return ops.sum(ops.sign(ops.stop_gradient(hinge)))


def _num_valid_triples(positive, negative, dtype):
    """``sum_i |P_i| |N_i|`` from the ``(A, B)`` pair masks: no ``(B, B, B)`` pass."""
    num_pos = ops.sum(ops.cast(positive, dtype), axis=1)
    num_neg = ops.sum(ops.cast(negative, dtype), axis=1)
    return ops.sum(num_pos * num_neg)


def _batch_all_anchor_terms(labels, embeddings, anchor_index, margin, distance, soft=False):
    """Batch-all term sum and normaliser share over the anchors ``anchor_index``.

    Summed over a partition of all anchors, the sums and counts are those of
    :func:`_batch_all_dense`; ``loss = sum of sums / max(sum of counts, 1)``. The count is
    the number of positive triples, or of valid triples when ``soft``.
    """
    distances = pairwise_distances(embeddings, distance=distance)
    distances = ops.take(distances, anchor_index, axis=0)
    positive, negative = anchor_pair_masks(labels, anchor_index)
    terms, count = _dense_terms(distances, positive, negative, margin, soft)
    if soft:
        count = _num_valid_triples(positive, negative, terms.dtype)
    return ops.sum(terms), count


def batch_all_triplet_loss(
    labels, embeddings, margin=0.2, squared=False, distance=None, soft=False, method="auto"
):
    """Masked batch-all triplet loss (FaceNet), as in the seed program.

    Over every valid triple ``(i, j, k)`` (distinct indices, ``labels[i] == labels[j]``,
    ``labels[i] != labels[k]``)::

        h_ijk = max(d(i, j) - d(i, k) + margin, 0)
        loss = sum(h_ijk) / num_positive,      num_positive = #{h_ijk > 0}
        fraction_positive = num_positive / num_valid

    with 0 (never NaN) when there is no valid or no positive triple. With ``soft=True``
    (Hermans et al.'s soft margin) the loss is ``mean over all valid triples of
    softplus(d(i, j) - d(i, k))``; ``margin`` then only defines ``fraction_positive``.

    Args:
        labels: integer class ids, shape ``(B,)`` or ``(B, 1)``. Any integer dtype; compared
            exactly, never through a float.
        embeddings: float tensor of shape ``(B, D)``. float16/bfloat16 are computed in
            float32; float64 stays float64.
        margin: the margin ``m``.
        squared: use squared Euclidean distances (same as ``distance="squared_euclidean"``).
        distance: ``"euclidean"`` (default), ``"squared_euclidean"`` or ``"cosine"``.
        soft: use the soft margin ``softplus(d_ap - d_an)`` instead of the hinge.
        method: ``"dense"`` (the seed's ``(B, B, B)`` tensors), ``"sorted"`` (exact, O(B^2)
            memory, O(B^2 log B) time, hinge with (squared) Euclidean distances:
            :mod:`tftriplet.batch_all_sorted`) or ``"auto"`` (dense for small static batch
            sizes, the soft margin and the cosine distance; else sorted).

    Returns:
        ``(loss, fraction_positive)``, two scalars.

    Example:
        >>> loss, frac = batch_all_triplet_loss([0, 0, 1], [[0.0], [0.1], [1.0]], margin=0.2)

    Reference:
        Schroff, Kalenichenko, Philbin. "FaceNet: A Unified Embedding for Face Recognition
        and Clustering", CVPR 2015. https://arxiv.org/abs/1503.03832
    """
    stats = batch_all_triplet_statistics(
        labels, embeddings, margin, squared, distance, soft, method
    )
    return stats["loss"], stats["fraction_positive"]


class TripletLoss(keras.losses.Loss):
    """Base class of the triplet losses: label handling, config and Keras plumbing.

    ``y_true`` holds integer class ids of shape ``(B,)`` or ``(B, 1)`` and ``y_pred`` the
    embeddings ``(B, D)``. Keras' ``Loss.__call__`` converts ``y_true`` to the loss dtype
    (float32), which merges class ids above 2**24; this class keeps ``y_true`` in its own
    dtype instead. The loss is one scalar for the batch: a triple couples samples, so
    ``sample_weight`` has no per-sample meaning and is rejected.

    Subclasses implement ``compute(labels, embeddings)`` on standardized inputs and return
    a scalar. ``cross_replica=True`` mines the global batch under ``tf.distribute`` (see
    :mod:`tftriplet.distributed`); a subclass supports it by implementing
    ``anchor_terms(labels, embeddings, anchor_index)``, its loss summed over the anchors
    ``anchor_index`` and its normaliser's share from them, and, where the normaliser is not
    a count, ``normalize``. Subclasses with a soft-margin form set ``supports_soft = True``.
    """

    supports_soft = False

    def __init__(
        self,
        margin=0.2,
        squared=False,
        name=None,
        reduction="sum_over_batch_size",
        dtype=None,
        cross_replica=False,
        distance=None,
        soft=False,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        margin = float(margin)
        if margin < 0:
            raise ValueError(f"margin must be >= 0; got {margin}.")
        if soft and not self.supports_soft:
            raise ValueError(f"{type(self).__name__} has no soft-margin form; got soft=True.")
        self.margin = margin
        self.distance = resolve_distance(distance, squared)
        self.squared = self.distance == "squared_euclidean"
        self.soft = bool(soft)
        if cross_replica and type(self).anchor_terms is TripletLoss.anchor_terms:
            raise ValueError(
                f"{type(self).__name__} does not implement anchor_terms(), so "
                "cross_replica=True is not available for it; got cross_replica=True."
            )
        self.cross_replica = bool(cross_replica)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError(
                f"{type(self).__name__} is a batch-level loss (each triple couples three "
                "samples), so per-sample `sample_weight` is not supported; got "
                f"sample_weight={sample_weight!r}. Pass sample_weight=None (and no "
                "class_weight)."
            )
        with keras.name_scope(self.name):
            labels, embeddings = standardize_inputs(y_true, y_pred)
            loss = distributed.replica_loss(self, labels, embeddings)
            return ops.cast(loss, self.dtype)

    def call(self, y_true, y_pred):
        labels, embeddings = standardize_inputs(y_true, y_pred)
        return self.compute(labels, embeddings)

    def compute(self, labels, embeddings):
        raise NotImplementedError

    def anchor_terms(self, labels, embeddings, anchor_index):
        """``(numerator, denominator)``: the loss summed over the anchors ``anchor_index``
        (mined against all of ``labels``/``embeddings``) and their share of the normaliser."""
        raise NotImplementedError

    @staticmethod
    def normalize(numerator, denominator):
        """The loss from the summed numerator and the global normaliser (a count)."""
        return numerator / ops.maximum(denominator, 1.0)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "margin": self.margin,
                "squared": self.squared,
                "distance": self.distance,
                "soft": self.soft,
                "cross_replica": self.cross_replica,
            }
        )
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchAllTripletLoss(TripletLoss):
    """Masked batch-all triplet loss, averaged over the positive (non-zero) triples.

    Every valid triple in the batch contributes; the loss is::

        loss = sum_{valid (i,j,k)} max(d(i,j) - d(i,k) + margin, 0) / #{positive triples}

    the seed program's (and FaceNet's) batch-all form. See :func:`batch_all_triplet_loss`.

    Args:
        margin: the margin ``m`` (default 0.2).
        squared: use squared Euclidean distances (default False).
        method: ``"auto"`` (default), ``"dense"`` or ``"sorted"``; see
            :func:`batch_all_triplet_loss`.
        name: the loss name.
        reduction: accepted for Keras compatibility; the loss is already one scalar per
            batch, so every reduction returns it unchanged.
        dtype: the dtype of the returned loss (computation is float32 at least).
        cross_replica: under ``tf.distribute``, mine every local anchor against the global
            batch and divide by the global number of positive triples, so that training
            matches one device on the global batch (see :mod:`tftriplet.distributed`).
        distance: ``"euclidean"`` (default), ``"squared_euclidean"`` or ``"cosine"``.
        soft: soft margin, ``mean over all valid triples of softplus(d_ap - d_an)``.

    Example:
        >>> model.compile(optimizer="adam",
        ...               loss=tftriplet.BatchAllTripletLoss(margin=0.2),
        ...               metrics=[tftriplet.FractionPositiveTriplets(margin=0.2)])

    Reference:
        Schroff et al., "FaceNet", CVPR 2015, https://arxiv.org/abs/1503.03832 ;
        Hermans et al., "In Defense of the Triplet Loss for Person Re-Identification",
        2017, https://arxiv.org/abs/1703.07737 (batch-all, averaged over non-zero terms).
    """

    supports_soft = True

    def __init__(self, margin=0.2, squared=False, method="auto", **kwargs):
        super().__init__(margin=margin, squared=squared, **kwargs)
        self.method = check_method(method)

    def compute(self, labels, embeddings):
        stats = _batch_all(labels, embeddings, self.margin, self.distance, self.soft, self.method)
        return stats["loss"]

    def anchor_terms(self, labels, embeddings, anchor_index):
        return _batch_all_anchor_terms(
            labels, embeddings, anchor_index, self.margin, self.distance, self.soft
        )

    def get_config(self):
        config = super().get_config()
        config["method"] = self.method
        return config
