"""Keras metrics that watch the triplets of each batch."""

from __future__ import annotations

import keras
from keras import ops

from tftriplet.batch_all_sorted import check_method
from tftriplet.inputs import standardize_inputs
from tftriplet.losses import PACKAGE, _batch_all


@keras.saving.register_keras_serializable(package=PACKAGE)
class FractionPositiveTriplets(keras.metrics.Mean):
    """Fraction of valid triples whose hinge is positive, averaged over batches.

    ``num_positive / num_valid`` with the seed program's meaning: the share of valid
    (anchor, positive, negative) triples with ``d(a, p) - d(a, n) + margin > 0``. It falls
    towards 0 as training makes triples easy; the seed reads values near 1 as a batch of
    mostly hard or semi-hard triples.

    Args:
        margin: the margin of the loss being watched.
        squared: use squared Euclidean distances.
        method: ``"auto"``, ``"dense"`` or ``"sorted"``, as for the loss.
        name, dtype: as for any Keras metric.
    """

    def __init__(
        self, margin=0.2, squared=False, method="auto", name="fraction_positive", dtype=None
    ):
        super().__init__(name=name, dtype=dtype)
        self.margin = float(margin)
        self.squared = bool(squared)
        self.method = check_method(method)

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels, embeddings = standardize_inputs(y_true, y_pred)
        stats = _batch_all(
            labels, embeddings, self.margin, self.squared, self.method, with_gradient=False
        )
        fraction = ops.cast(stats["fraction_positive"], self.dtype)
        return super().update_state(fraction)

    def get_config(self):
        config = super().get_config()
        config.update({"margin": self.margin, "squared": self.squared, "method": self.method})
        return config
