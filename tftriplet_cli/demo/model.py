"""The demo's network, its loss (`--strategy`) and its training metrics."""

from __future__ import annotations

from tftriplet import (
    BatchAllTripletLoss,
    BatchHardTripletLoss,
    FractionPositiveTriplets,
    SemiHardTripletLoss,
    TripletDifficulty,
)
from tftriplet_cli.demo.options import DemoError

# --strategy name -> loss class; every class takes `margin=`.
STRATEGIES = {
    "batch_all": BatchAllTripletLoss,
    "batch_hard": BatchHardTripletLoss,
    "semi_hard": SemiHardTripletLoss,
}
# Metrics, each built with `margin=`. A metric's result may be a scalar or a dict of
# scalars (Keras logs each key of a dict result as its own entry).
METRICS = (FractionPositiveTriplets, TripletDifficulty)


def make_loss(strategy, margin, memory_size=0, memory_warmup=0):
    """The loss of `strategy` (a key of `STRATEGIES`), built with `margin`, and with a
    cross-batch memory of `memory_size` samples after `memory_warmup` steps when
    `memory_size > 0` (docs/memory.md)."""
    if strategy not in STRATEGIES:
        raise DemoError(f"--strategy must be one of {sorted(STRATEGIES)}; got {strategy!r}.")
    for option, value in (("--memory", memory_size), ("--memory-warmup", memory_warmup)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DemoError(f"{option} must be a whole number >= 0; got {value!r}.")
    if memory_warmup and not memory_size:
        raise DemoError(f"--memory-warmup {memory_warmup} needs a memory: give --memory N too.")
    try:  # the memory's settings are checked above: an error left is the margin's
        return STRATEGIES[strategy](
            margin=margin, memory_size=memory_size, memory_warmup=memory_warmup
        )
    except ValueError as err:
        raise DemoError(f"--margin {margin}: {err}") from err


def make_metrics(margin):
    """One instance of each metric of `METRICS`, built with `margin`."""
    return [cls(margin=margin) for cls in METRICS]


def build_model(input_dim, embedding_dim=32, hidden_units=128):
    """Dense -> ReLU -> Dense -> L2 normalisation: embeddings on the unit sphere."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(input_dim,)),
            keras.layers.Dense(hidden_units, activation="relu", name="hidden"),
            keras.layers.Dense(embedding_dim, name="projection"),
            keras.layers.UnitNormalization(name="l2_normalize"),
        ],
        name="embedding_network",
    )
