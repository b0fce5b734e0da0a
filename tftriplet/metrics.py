"""Keras metrics that watch the triplets of each batch."""

from __future__ import annotations

import keras
from keras import ops

from tftriplet import engine
from tftriplet.config import PACKAGE, distance_config
from tftriplet.distances import pairwise_distances, resolve_distance
from tftriplet.inputs import standardize_inputs
from tftriplet.margins import check_margin
from tftriplet.masks import anchor_negative_mask, anchor_positive_mask
from tftriplet.mining import anchor_rows
from tftriplet.statistics import fraction_positive


def reject_sample_weight(metric, sample_weight):
    """Refuse per-sample weights: a triple couples three samples, so they have no meaning."""
    if sample_weight is not None:
        raise ValueError(
            f"{type(metric).__name__} measures the triples of a whole batch (each couples "
            "three samples), so per-sample `sample_weight` is not supported; got "
            f"sample_weight={sample_weight!r}. Pass sample_weight=None (and no class_weight)."
        )


@keras.saving.register_keras_serializable(package=PACKAGE)
class FractionPositiveTriplets(keras.metrics.Mean):
    """Fraction of valid triples whose hinge is positive, averaged over batches.

    `num_positive / num_valid`: the share of valid
    (anchor, positive, negative) triples with `d(a, p) - d(a, n) + margin > 0`. It falls
    towards 0 as training makes triples easy; values near 1 mean a batch of mostly hard or
    semi-hard triples. Each batch's fraction is one value of the mean.

    Args:
        margin: the margin of the loss being watched.
        method: `"auto"`, `"dense"` or `"sorted"`, as for `tftriplet.BatchAllTripletLoss`
            (the same numbers).
        anchor_block: anchors per block, as for `tftriplet.BatchAllTripletLoss`.
        distance: `"euclidean"` (default), `"squared_euclidean"` or `"cosine"`.
        squared: shorthand for `distance="squared_euclidean"`.
        name: the metric name.
        dtype: the dtype of the result.

    `y_true`: integer class ids `(B,)` or `(B, 1)`; `y_pred`: embeddings `(B, D)`.

    Example:
        ```python
        model.compile(optimizer="adam", loss=tftriplet.BatchAllTripletLoss(),
                      metrics=[tftriplet.FractionPositiveTriplets(margin=0.2)])
        ```

    Reference:
        Schroff et al., "FaceNet", CVPR 2015, https://arxiv.org/abs/1503.03832
    """

    def __init__(
        self,
        margin=0.2,
        *,
        method="auto",
        anchor_block=None,
        distance=None,
        squared=False,
        name="fraction_positive",
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        self.margin = check_margin(margin)
        self.method = engine.check_method(method)
        self.anchor_block = engine.check_anchor_block(anchor_block)
        self.distance = resolve_distance(distance, squared)

    def update_state(self, y_true, y_pred, sample_weight=None):
        reject_sample_weight(self, sample_weight)
        labels, embeddings = standardize_inputs(y_true, y_pred)
        sums = engine.batch_all_sums(
            labels, embeddings, self.margin, self.distance, method=self.method,
            anchor_block=self.anchor_block, with_gradient=False,
        )
        return super().update_state(ops.cast(fraction_positive(sums), self.dtype))

    def get_config(self):
        config = super().get_config()
        config.update({"margin": self.margin, "method": self.method,
                       "anchor_block": self.anchor_block, **distance_config(self.distance)})
        return config


def difficulty_counts(rows, margin):
    """Numbers of valid triples that are hard, semi-hard and easy (FaceNet's taxonomy).

    For a valid triple (anchor i, positive j, negative k), with `d_ap = d(i, j)` and
    `d_an = d(i, k)`: hard if `d_an <= d_ap`; else semi-hard if `d_an < d_ap + margin`;
    else easy (`d_an >= d_ap + margin`). At margin 0 a tie `d_an = d_ap` is hard.

    Args:
        rows: `tftriplet.mining.AnchorRows` of the batch.
        margin: the margin.

    Returns:
        A dict of float32 scalars `hard`, `semi_hard`, `easy` and `valid`.
    """
    d = ops.stop_gradient(rows.distances)
    hard = rows.negatives_below(d, inclusive=True)
    not_easy = ops.maximum(rows.negatives_below(d + margin, inclusive=False), hard)
    num_neg = ops.expand_dims(rows.num_negatives, 1)

    def total(per_pair):
        # Summed as int32 (exact to 2**31 triples), then one cast.
        return ops.cast(ops.sum(ops.where(rows.positive, per_pair, 0)), "float32")

    return {
        "hard": total(hard),
        "semi_hard": total(not_easy - hard),
        "easy": total(num_neg - not_easy),
        "valid": total(num_neg + ops.zeros_like(hard)),
    }


@keras.saving.register_keras_serializable(package=PACKAGE)
class TripletDifficulty(keras.metrics.Metric):
    """Shares of valid triples that are easy, semi-hard and hard (FaceNet's taxonomy).

    For a valid triple (anchor a, positive p, negative n):

        hard       d_an <= d_ap
        semi_hard  d_ap < d_an < d_ap + margin
        easy       d_an >= d_ap + margin

    (at margin 0 a tie is hard, so the three shares always sum to 1). `result()` is a dict
    `{"easy", "semi_hard", "hard"}` of fractions of all valid triples seen since the last
    reset: the counts are accumulated over batches and divided at the end, so a batch with
    more triples weighs more (not a mean of per-batch fractions). Counting sorts each
    anchor's negatives and bisects, so memory is `O(B^2)`, never a `(B, B, B)` tile.

    Args:
        margin: the margin of the loss being watched.
        distance: `"euclidean"` (default), `"squared_euclidean"` or `"cosine"`.
        squared: shorthand for `distance="squared_euclidean"`.
        name: the metric name.
        dtype: the dtype of the result.

    Example:
        ```python
        model.compile(optimizer="adam", loss=tftriplet.SemiHardTripletLoss(),
                      metrics=[tftriplet.TripletDifficulty(margin=0.2)])
        ```

    Reference:
        Schroff et al., "FaceNet", CVPR 2015, section 3.2 (semi-hard negatives).
    """

    KINDS = ("easy", "semi_hard", "hard")

    def __init__(
        self, margin=0.2, *, distance=None, squared=False, name="triplet_difficulty", dtype=None
    ):
        super().__init__(name=name, dtype=dtype)
        self.margin = check_margin(margin)
        self.distance = resolve_distance(distance, squared)
        self.counts = {
            kind: self.add_variable(shape=(), initializer="zeros", name=kind, dtype="float32")
            for kind in self.KINDS
        }

    def update_state(self, y_true, y_pred, sample_weight=None):
        reject_sample_weight(self, sample_weight)
        labels, embeddings = standardize_inputs(y_true, y_pred)
        counts = difficulty_counts(anchor_rows(labels, embeddings, self.distance), self.margin)
        for kind in self.KINDS:
            self.counts[kind].assign_add(counts[kind])

    def result(self):
        total = ops.maximum(sum(ops.convert_to_tensor(v) for v in self.counts.values()), 1.0)
        return {kind: ops.cast(v / total, self.dtype) for kind, v in self.counts.items()}

    def reset_state(self):
        for variable in self.counts.values():
            variable.assign(0.0)

    def get_config(self):
        config = super().get_config()
        config.update({"margin": self.margin, **distance_config(self.distance)})
        return config


class _MeanPairDistance(keras.metrics.Metric):
    """Mean distance over the pairs of `pair_mask`, accumulated as sum and count."""

    default_name = None

    def __init__(self, *, distance=None, squared=False, name=None, dtype=None):
        super().__init__(name=name or self.default_name, dtype=dtype)
        self.distance = resolve_distance(distance, squared)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def pair_mask(self, labels):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        reject_sample_weight(self, sample_weight)
        labels, embeddings = standardize_inputs(y_true, y_pred)
        d = pairwise_distances(embeddings, distance=self.distance)
        mask = self.pair_mask(labels)
        self.total.assign_add(ops.cast(ops.sum(ops.where(mask, d, 0.0)), self.total.dtype))
        self.count.assign_add(ops.cast(ops.sum(ops.cast(mask, "int32")), self.count.dtype))

    def result(self):
        return self.total / ops.maximum(self.count, 1.0)

    def get_config(self):
        config = super().get_config()
        config.update(distance_config(self.distance))
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class MeanPositiveDistance(_MeanPairDistance):
    """Mean `d(i, j)` over ordered anchor-positive pairs (`i != j`, same label).

    Accumulated over batches (sum of distances / number of pairs). Watched together with
    `MeanNegativeDistance`: both falling towards 0 while the loss sits at the margin
    is embedding collapse.

    Args:
        distance: `"euclidean"` (default), `"squared_euclidean"` or `"cosine"`.
        squared: shorthand for `distance="squared_euclidean"`.
        name: the metric name.
        dtype: the dtype of the result.

    Example:
        ```python
        model.compile(optimizer="adam", loss=tftriplet.BatchHardTripletLoss(),
                      metrics=[tftriplet.MeanPositiveDistance(),
                               tftriplet.MeanNegativeDistance()])
        ```

    Reference:
        Hermans et al., "In Defense of the Triplet Loss for Person Re-Identification",
        2017, https://arxiv.org/abs/1703.07737 (section 3, on collapsed embeddings).
    """

    default_name = "mean_positive_distance"

    def pair_mask(self, labels):
        return anchor_positive_mask(labels)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MeanNegativeDistance(_MeanPairDistance):
    """Mean `d(i, k)` over ordered anchor-negative pairs (different labels).

    Accumulated over batches (sum of distances / number of pairs). See
    `MeanPositiveDistance`.

    Args:
        distance: `"euclidean"` (default), `"squared_euclidean"` or `"cosine"`.
        squared: shorthand for `distance="squared_euclidean"`.
        name: the metric name.
        dtype: the dtype of the result.

    Example:
        ```python
        metric = tftriplet.MeanNegativeDistance(distance="cosine")
        ```

    Reference:
        Hermans et al., "In Defense of the Triplet Loss for Person Re-Identification",
        2017, https://arxiv.org/abs/1703.07737
    """

    default_name = "mean_negative_distance"

    def pair_mask(self, labels):
        return anchor_negative_mask(labels)
