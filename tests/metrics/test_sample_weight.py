"""Every triplet metric refuses per-sample weights, as the losses do: never silently ignored."""

import numpy as np
import pytest

import tftriplet

METRICS = [
    tftriplet.FractionPositiveTriplets,
    tftriplet.TripletDifficulty,
    tftriplet.MeanPositiveDistance,
    tftriplet.MeanNegativeDistance,
]


@pytest.mark.parametrize("cls", METRICS, ids=lambda c: c.__name__)
def test_sample_weight_is_refused(cls):
    labels = np.array([0, 0, 1, 1])
    x = np.eye(4, dtype="float32")
    metric = cls()
    with pytest.raises(ValueError, match="sample_weight"):
        metric.update_state(labels, x, sample_weight=np.ones(4))
    metric.update_state(labels, x)  # without weights it counts as usual
    assert np.all(np.isfinite(np.asarray(result_values(metric))))


def result_values(metric):
    result = metric.result()
    return list(result.values()) if isinstance(result, dict) else result
