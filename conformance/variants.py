"""The one table of loss variants: how each backend computes a fixture's ``loss`` object.

A fixture names its loss as ``{"name": "batch_all", "margin": 0.2, "distance": ...}``.
Adding a variant (``batch_hard``, ``semi_hard``, ...) is one entry in :data:`VARIANTS` (plus
its name in ``schema.json``): a float64 reference, a factory of Keras callables, and the
C program's loss id if the C backend implements it. Backends never branch on the name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def squared_from(loss):
    """``True`` for ``"squared_euclidean"``, ``False`` for ``"euclidean"``."""
    distance = loss.get("distance", "euclidean")
    if distance not in ("euclidean", "squared_euclidean"):
        raise ValueError(f"distance {distance!r} is not supported by this variant")
    return distance == "squared_euclidean"


def loss_dtype(dtype):
    """The ``dtype`` to give a Keras ``Loss``: its output is float32 unless asked for float64."""
    return "float64" if dtype == "float64" else None


def _batch_all_reference(labels, embeddings, loss):
    from tftriplet import reference

    return reference.batch_all_triplet_loss(
        labels, embeddings, margin=loss["margin"], squared=squared_from(loss)
    )


def _batch_all_keras(loss, dtype):
    """``(loss_fn, statistics_fn)``: the public Loss class and the statistics function."""
    import tftriplet

    squared = squared_from(loss)
    loss_object = tftriplet.BatchAllTripletLoss(
        margin=loss["margin"], squared=squared, dtype=loss_dtype(dtype)
    )

    def statistics(labels, embeddings):
        return tftriplet.batch_all_triplet_statistics(
            labels, embeddings, margin=loss["margin"], squared=squared
        )

    return loss_object, statistics


def _batch_all_hinges(labels, embeddings, loss):
    """``d(i, j) - d(i, k) + margin`` over every valid triple, vectorized float64."""
    import numpy as np

    from tftriplet import reference

    labels = np.asarray(labels).reshape(-1)
    d = reference.pairwise_distances(embeddings, squared=squared_from(loss))
    same = labels[:, None] == labels[None, :]
    b = len(labels)
    positive = same & ~np.eye(b, dtype=bool)
    valid = positive[:, :, None] & ~same[:, None, :]
    return (d[:, :, None] - d[:, None, :] + loss["margin"])[valid]


@dataclass(frozen=True)
class Variant:
    """How to compute one loss variant.

    Attributes:
        reference: ``(labels, embeddings, loss) -> dict`` in float64 NumPy, with the outputs
            named in ``outputs`` plus ``gradient``.
        keras: ``(loss, dtype) -> (loss_fn, statistics_fn)``; ``loss_fn(labels, embeddings)`` is the
            scalar loss (the public ``keras.losses.Loss``), ``statistics_fn`` returns a dict
            of the non-gradient outputs.
        c_name: the loss id the C program takes, or ``None`` if it does not implement it.
        outputs: the scalar outputs a fixture stores for this variant.
        counts: those outputs that are integer counts (compared exactly by default).
        hinges: ``(labels, embeddings, loss) -> 1-D array`` of the float64 hinge arguments
            whose sign decides the counts; the generator keeps random cases clear of 0.
    """

    reference: Callable
    keras: Callable
    c_name: str | None
    outputs: tuple[str, ...]
    counts: tuple[str, ...]
    hinges: Callable | None = None


VARIANTS = {
    "batch_all": Variant(
        reference=_batch_all_reference,
        keras=_batch_all_keras,
        c_name="batch_all",
        outputs=("loss", "fraction_positive", "num_positive", "num_valid"),
        counts=("num_positive", "num_valid"),
        hinges=_batch_all_hinges,
    ),
}


def variant_of(case):
    """The :class:`Variant` of a fixture, or a ``KeyError`` naming the known ones."""
    name = case["loss"]["name"]
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; known: {sorted(VARIANTS)}") from None
