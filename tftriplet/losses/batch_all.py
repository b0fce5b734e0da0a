"""Batch-all: every valid triple of the batch, averaged over the positive ones (FaceNet).

The function, its statistics and the Keras ``Loss`` live here; the two kernels that
evaluate it, :mod:`~tftriplet.losses.batch_all_dense` (``(B, B, B)`` tensors) and
:mod:`~tftriplet.losses.batch_all_sorted` (``O(B^2)`` memory), below it. ``method``
chooses between them; both give the same numbers.
"""

from __future__ import annotations

import keras

from tftriplet.distances import resolve_distance
from tftriplet.inputs import standardize_inputs
from tftriplet.losses.base import PACKAGE, TripletLoss
from tftriplet.losses.batch_all_dense import batch_all_dense, batch_all_dense_anchor_terms
from tftriplet.losses.batch_all_sorted import batch_all_sorted

#: The values of ``method``.
METHODS = ("auto", "dense", "sorted")

#: ``method="auto"`` uses the dense form up to this static batch size and the sorted form
#: above it (docs/performance.md).
AUTO_DENSE_MAX_BATCH = 32


def check_method(method):
    """``method`` if it is one of :data:`METHODS`, else a ``ValueError``."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(
            f"method must be one of {', '.join(repr(m) for m in METHODS)}; got {method!r}."
        )
    return method


def resolve_method(method, batch_size):
    """The kernel (``"dense"`` or ``"sorted"``) that ``method`` means for ``batch_size``.

    ``"auto"`` picks by the static batch size: dense up to :data:`AUTO_DENSE_MAX_BATCH`,
    sorted above it and when the batch size is unknown (``None``), the choice that is safe
    in memory.
    """
    check_method(method)
    if method != "auto":
        return method
    if batch_size is None or batch_size > AUTO_DENSE_MAX_BATCH:
        return "sorted"
    return "dense"


def sortable(distance, soft):
    """Whether the sorted kernel computes this loss: the hinge with Euclidean distances."""
    return not soft and distance in ("euclidean", "squared_euclidean")


def batch_all_statistics(labels, embeddings, margin, distance, soft, method, with_gradient=True):
    """The batch-all statistics of standardized inputs, by the kernel ``method`` selects.

    ``with_gradient=False`` lets the sorted kernel skip its analytic gradient (for metrics).
    """
    if method == "sorted" and not sortable(distance, soft):
        raise ValueError(
            "method='sorted' computes the hinge with distance='euclidean' or "
            f"'squared_euclidean'; got distance={distance!r}, soft={soft!r}. Use "
            "method='dense' (or 'auto') for these."
        )
    if not sortable(distance, soft) or resolve_method(method, embeddings.shape[0]) == "dense":
        return batch_all_dense(labels, embeddings, margin, distance, soft)
    squared = distance == "squared_euclidean"
    return batch_all_sorted(labels, embeddings, margin, squared, with_gradient)


def batch_all_triplet_statistics(
    labels, embeddings, margin=0.2, squared=False, distance=None, soft=False, method="auto"
):
    """Loss and counts of the batch-all triplet loss.

    Like :func:`batch_all_triplet_loss`, with the counts.

    Returns:
        A dict of scalars: ``loss``, ``fraction_positive``, ``num_positive`` and
        ``num_valid`` (counts as floats in the loss's dtype: exact below 2**24 triples in
        float32).

    Example:
        >>> stats = batch_all_triplet_statistics([0, 0, 1], [[0.0], [0.1], [1.0]])
        >>> float(stats["num_valid"])
        2.0
    """
    labels, embeddings = standardize_inputs(labels, embeddings)
    distance = resolve_distance(distance, squared)
    return batch_all_statistics(labels, embeddings, margin, distance, soft, check_method(method))


def batch_all_triplet_loss(
    labels, embeddings, margin=0.2, squared=False, distance=None, soft=False, method="auto"
):
    """Batch-all triplet loss (FaceNet): every valid triple, averaged over the positive ones.

    A triple ``(i, j, k)`` is valid when ``i, j, k`` are distinct, ``y_i == y_j`` and
    ``y_i != y_k``. Over the valid triples::

        h_ijk = max(d(i, j) - d(i, k) + margin, 0)
        loss = sum(h_ijk) / #{h_ijk > 0}
        fraction_positive = #{h_ijk > 0} / #{valid triples}

    Both are 0, never NaN, when there is no valid or no positive triple. With ``soft=True``
    the loss is the mean of ``softplus(d(i, j) - d(i, k))`` over all valid triples and
    ``margin`` only defines ``fraction_positive``.

    Args:
        labels: integer class ids, shape ``(B,)`` or ``(B, 1)``, any integer dtype (floats
            holding integers are accepted); compared exactly, never through a float.
        embeddings: float tensor of shape ``(B, D)``. float16 and bfloat16 are computed in
            float32; float64 stays float64.
        margin: the margin ``m``, at least 0.
        squared: shorthand for ``distance="squared_euclidean"``.
        distance: ``"euclidean"`` (default), ``"squared_euclidean"`` or ``"cosine"``.
        soft: the soft margin ``softplus(d(i, j) - d(i, k))`` instead of the hinge.
        method: ``"dense"`` (``(B, B, B)`` tensors), ``"sorted"`` (exact at ``O(B^2)``
            memory; the hinge with Euclidean distances) or ``"auto"`` (dense for static
            batch sizes up to 32, the soft margin and the cosine distance; else sorted).

    Returns:
        ``(loss, fraction_positive)``, two scalars.

    Example:
        >>> loss, fraction = batch_all_triplet_loss([0, 0, 1], [[0.0], [0.1], [1.0]])

    Reference:
        Schroff, Kalenichenko, Philbin. "FaceNet: A Unified Embedding for Face Recognition
        and Clustering", CVPR 2015. https://arxiv.org/abs/1503.03832
    """
    stats = batch_all_triplet_statistics(
        labels, embeddings, margin, squared, distance, soft, method
    )
    return stats["loss"], stats["fraction_positive"]


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchAllTripletLoss(TripletLoss):
    """Batch-all triplet loss (FaceNet) as a Keras loss.

    Every valid triple ``(i, j, k)`` of the batch (``y_i == y_j != y_k``, distinct indices)
    contributes::

        loss = sum_valid max(d(i, j) - d(i, k) + margin, 0) / #{positive triples}

    or, with ``soft=True``, the mean over all valid triples of ``softplus(d(i, j) -
    d(i, k))``. 0, never NaN, when nothing is counted. See :func:`batch_all_triplet_loss`.

    Args:
        margin: the margin ``m`` (default 0.2).
        soft: the soft margin instead of the hinge.
        method: ``"auto"`` (default), ``"dense"`` or ``"sorted"``; the same numbers, see
            :func:`batch_all_triplet_loss`.
        cross_replica: under ``tf.distribute``, mine every local anchor against the global
            batch and divide by the global count, so that training matches one device on
            the global batch (:mod:`tftriplet.distributed`).
        distance: ``"euclidean"`` (default), ``"squared_euclidean"`` or ``"cosine"``.
        squared: shorthand for ``distance="squared_euclidean"``.
        name: the loss name.
        reduction: accepted for Keras compatibility; the loss is one scalar per batch.
        dtype: the dtype of the returned loss (computed in float32 at least).

    ``y_true``: integer class ids ``(B,)`` or ``(B, 1)``; ``y_pred``: embeddings ``(B, D)``.

    Example:
        >>> model.compile(optimizer="adam",
        ...               loss=tftriplet.BatchAllTripletLoss(margin=0.2),
        ...               metrics=[tftriplet.FractionPositiveTriplets(margin=0.2)])

    Reference:
        Schroff et al., "FaceNet", CVPR 2015, https://arxiv.org/abs/1503.03832 ;
        Hermans et al., "In Defense of the Triplet Loss for Person Re-Identification",
        2017, https://arxiv.org/abs/1703.07737
    """

    supports_soft = True

    def __init__(
        self,
        margin=0.2,
        *,
        soft=False,
        method="auto",
        cross_replica=False,
        distance=None,
        squared=False,
        name=None,
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(
            margin,
            soft=soft,
            cross_replica=cross_replica,
            distance=distance,
            squared=squared,
            name=name,
            reduction=reduction,
            dtype=dtype,
        )
        self.method = check_method(method)

    def compute(self, labels, embeddings):
        return batch_all_statistics(
            labels, embeddings, self.margin, self.distance, self.soft, self.method
        )["loss"]

    def anchor_terms(self, labels, embeddings, anchor_index):
        return batch_all_dense_anchor_terms(
            labels, embeddings, anchor_index, self.margin, self.distance, self.soft
        )

    def get_config(self):
        config = super().get_config()
        config["method"] = self.method
        return config
