"""Batch-all: every valid triple of the batch, averaged over the positive ones (FaceNet).

The function, its statistics and the Keras ``Loss`` live here; the two kernels that
evaluate it, :mod:`~tftriplet.losses.batch_all_dense` (``(B, B, B)`` tensors) and
:mod:`~tftriplet.losses.batch_all_sorted` (``O(B^2)`` memory, or ``O(block B)`` in anchor
blocks, which also evaluates the dense form a block of anchors at a time), below it.
``method`` chooses between them; all give the same numbers.

Which form runs (``anchor_block=None``):

* ``"dense"``: the whole ``(B, B, B)`` form.
* ``"sorted"``: the hinge counted by sorting, on whole ``(B, B)`` matrices up to 2048
  samples with Euclidean distances, else in anchor blocks (cosine always).
* ``"auto"``: ``"dense"`` up to 32 samples (static batch size); above, and for an unknown
  batch size, ``"sorted"`` for the hinge and the per-triple form in blocks of at most 32
  anchors for the soft margin, so that no ``(B, B, B)`` tensor is built.

With ``anchor_block`` the sorted form always runs in blocks of that many anchors, and
``"dense"`` evaluates every triple in blocks of that many anchors (``O(block B^2)``).
"""

from __future__ import annotations

import keras
from keras import ops

from tftriplet.distances import resolve_distance
from tftriplet.inputs import standardize_inputs
from tftriplet.losses.base import PACKAGE, TripletLoss, normalize
from tftriplet.losses.batch_all_dense import batch_all_dense
from tftriplet.losses.batch_all_sorted import (
    batch_all_sorted,
    blocked_terms,
    check_anchor_block,
    with_gradient_of,
)

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


def _all_finite(embeddings):
    """A boolean scalar: every entry of ``embeddings`` is finite."""
    return ops.all(ops.isfinite(embeddings))


def _nan_unless(finite, value):
    """``value`` where ``finite``, else NaN (the gradient of ``value`` is kept)."""
    return ops.where(finite, value, ops.cast(float("nan"), value.dtype))


def batch_all_statistics(
    labels, embeddings, margin, distance, soft, method, with_gradient=True, anchor_block=None
):
    """The batch-all statistics of standardized inputs, by the kernel ``method`` selects.

    ``with_gradient=False`` lets the sorted kernel skip its analytic gradient (for metrics).
    Non-finite embeddings give a NaN loss, ``fraction_positive`` and ``num_positive``
    whatever the method.
    """
    anchor_block = check_anchor_block(anchor_block)
    if method == "sorted" and soft:  # the sorted kernel counts hinges, for any distance
        raise ValueError(
            "method='sorted' computes the hinge (any distance) by counting sorted "
            f"distances, and the soft margin has no such shortcut; got soft={soft!r}. Use "
            "method='dense' (with anchor_block=... to bound its memory) or 'auto', which "
            "evaluates the soft margin in anchor blocks above 32 samples."
        )
    batch_size = embeddings.shape[0]
    resolved = resolve_method(method, batch_size)
    if resolved == "dense" or soft:
        if anchor_block is None and resolved == "dense":
            stats = batch_all_dense(labels, embeddings, margin, distance, soft)
        else:
            stats = _blocked_dense(
                labels, embeddings, margin, distance, soft, anchor_block, with_gradient
            )
    else:
        stats = batch_all_sorted(
            labels, embeddings, margin, distance == "squared_euclidean", with_gradient,
            anchor_block=anchor_block, distance=distance,
        )
    finite = _all_finite(embeddings)
    for key in ("loss", "fraction_positive", "num_positive"):
        stats[key] = _nan_unless(finite, stats[key])
    return stats


def _blocked_dense(labels, embeddings, margin, distance, soft, anchor_block, with_gradient):
    """The dense form's statistics in anchor blocks: ``O(block B^2)`` memory. With
    ``anchor_block=None`` (``method="auto"``) the block is at most
    :data:`AUTO_DENSE_MAX_BATCH` anchors, so no ``(B, B, B)`` tensor is built."""
    stats = blocked_terms(
        labels, embeddings, margin, distance, soft, anchor_block=anchor_block,
        with_gradient=with_gradient, per_triple=True, max_block=AUTO_DENSE_MAX_BATCH,
    )
    num_positive, num_valid = stats["num_positive"], stats["num_valid"]
    denominator = ops.maximum(num_valid if soft else num_positive, 1.0)
    loss = stats["terms"] / denominator
    if with_gradient:
        loss = with_gradient_of(loss, stats["gradient"] / denominator, embeddings)
    return {
        "loss": loss,
        "fraction_positive": normalize(num_positive, num_valid),
        "num_positive": num_positive,
        "num_valid": num_valid,
    }


def batch_all_triplet_statistics(
    labels,
    embeddings,
    margin=0.2,
    squared=False,
    distance=None,
    soft=False,
    method="auto",
    anchor_block=None,
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
    return batch_all_statistics(
        labels, embeddings, margin, distance, soft, check_method(method),
        anchor_block=anchor_block,
    )


def batch_all_triplet_loss(
    labels,
    embeddings,
    margin=0.2,
    squared=False,
    distance=None,
    soft=False,
    method="auto",
    anchor_block=None,
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
        method: ``"dense"`` (every triple: ``(B, B, B)`` tensors, or ``(block, B, B)``
            with ``anchor_block``), ``"sorted"`` (the hinge, any distance, counted by
            sorting: ``(B, B)`` tensors up to 2048 samples, ``(block, B)`` above) or
            ``"auto"`` (dense up to 32 samples; above, sorted for the hinge and dense in
            anchor blocks of at most 32 for the soft margin). All give the same numbers.
        anchor_block: anchors per block (a positive int) for the blocked forms, or None to
            choose it from the batch size. Smaller blocks use less memory.

    Non-finite embeddings give a NaN loss and a NaN fraction whatever the method; an
    empty batch gives 0 and 0.

    Returns:
        ``(loss, fraction_positive)``, two scalars.

    Example:
        >>> loss, fraction = batch_all_triplet_loss([0, 0, 1], [[0.0], [0.1], [1.0]])

    Reference:
        Schroff, Kalenichenko, Philbin. "FaceNet: A Unified Embedding for Face Recognition
        and Clustering", CVPR 2015. https://arxiv.org/abs/1503.03832
    """
    stats = batch_all_triplet_statistics(
        labels, embeddings, margin, squared, distance, soft, method, anchor_block
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
        anchor_block: anchors per block of the blocked forms (a positive int), or None
            (default) to choose it from the batch size.
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
        anchor_block=None,
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
        self.anchor_block = check_anchor_block(anchor_block)

    def compute(self, labels, embeddings):
        return batch_all_statistics(
            labels, embeddings, self.margin, self.distance, self.soft, self.method,
            anchor_block=self.anchor_block,
        )["loss"]

    def anchor_terms(self, labels, embeddings, anchor_index):
        """``(numerator, count)`` over the anchors ``anchor_index`` mined against the batch.

        The numerator is the sum of their triples' terms, with its analytic gradient with
        respect to ``embeddings``; the count is their number of positive triples (of valid
        triples with the soft margin). Computed in anchor blocks whatever ``method``:
        ``O(A B)`` memory for the hinge (sorted counts), ``O(block B^2)`` for the soft
        margin. Non-finite embeddings give a NaN numerator and count.
        """
        stats = blocked_terms(
            labels, embeddings, self.margin, self.distance, self.soft,
            anchor_index=anchor_index, anchor_block=self.anchor_block,
            max_block=AUTO_DENSE_MAX_BATCH if self.soft else None,
        )
        numerator = with_gradient_of(stats["terms"], stats["gradient"], embeddings)
        count = stats["num_valid"] if self.soft else stats["num_positive"]
        finite = _all_finite(embeddings)
        return _nan_unless(finite, numerator), _nan_unless(finite, count)

    def get_config(self):
        config = super().get_config()
        config["method"] = self.method
        config["anchor_block"] = self.anchor_block
        return config
