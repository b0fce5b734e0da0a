"""The one table of loss variants: how each backend computes a fixture's `loss` object.

A fixture names its loss as `{"name": "batch_hard", "margin": 0.2, "distance": "cosine",
"soft": true}`. Each strategy (`batch_all`, `batch_hard`, `semi_hard`) is one entry in
`VARIANTS` (plus its name in `schema.json`): a float64 reference, a factory of Keras
callables, the C program's loss id if the C backend implements it, and the quantities whose
signs decide its counts and selections. The options `distance` and `soft` are passed
through to both sides. Backends never branch on the name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def loss_dtype(dtype):
    """The `dtype` to give a Keras `Loss`: its output is float32 unless asked for float64."""
    return "float64" if dtype == "float64" else None


def options_of(loss):
    """A fixture's `loss` object with its defaults filled: `name`, `margin`, `distance`
    (`"euclidean"`) and `soft` (`False`)."""
    return {
        "name": loss["name"],
        "margin": loss["margin"],
        "distance": loss.get("distance", "euclidean"),
        "soft": bool(loss.get("soft", False)),
    }


def _reference(labels, embeddings, loss):
    """The float64 loop reference of any strategy
    (`tftriplet_conformance.reference.triplet_loss`)."""
    from tftriplet_conformance import reference

    options = options_of(loss)
    return reference.triplet_loss(labels, embeddings, options.pop("name"), **options)


def memory_reference(steps, loss, memory):
    """The float64 outputs of every step of a memory fixture: `steps` are `(labels,
    embeddings)` pairs, `loss` and `memory` the fixture's objects
    (`tftriplet_conformance.reference.memory_steps`)."""
    import numpy as np

    from tftriplet_conformance import reference

    options = options_of(loss)
    strategy = options.pop("name")
    labeled = [(np.array(labels, np.int64), rows) for labels, rows in steps]
    return reference.memory_steps(labeled, memory["size"], memory["warmup"], strategy,
                                  **options)


#: The keys of a fixture's optional `hints` object: how tftriplet's own kernels evaluate
#: the loss (`method`: batch-all's dense or sorted form; `anchor_block`: anchors per block
#: of a blocked form). The result is the same; other implementations ignore them.
HINTS = ("method", "anchor_block")


def _keras_factory(class_name, statistics_name, has_soft=True):
    """`(loss, dtype, hints=None, memory=None) -> (loss_fn, statistics_fn)`: the public
    Loss class and statistics, with the fixture's `hints` passed on as keyword arguments.
    With a fixture's `memory` object the Loss has that memory, and the statistics are its
    own (`TripletLoss.statistics`: the batch against the memory, which it leaves as is)."""

    def factory(loss, dtype, hints=None, memory=None):
        import tftriplet

        options = options_of(loss)
        options.pop("name")
        if not has_soft:
            if options.pop("soft"):
                raise ValueError(f"{class_name} has no soft-margin form")
        options.update({key: hints[key] for key in HINTS if key in (hints or {})})
        with_memory = {} if memory is None else {"memory_size": memory["size"],
                                                 "memory_warmup": memory["warmup"]}
        loss_object = getattr(tftriplet, class_name)(**options, **with_memory,
                                                     dtype=loss_dtype(dtype))
        if memory is not None:
            return loss_object, loss_object.statistics
        statistics_fn = getattr(tftriplet, statistics_name)

        def statistics(labels, embeddings):
            return statistics_fn(labels, embeddings, **options)

        return loss_object, statistics

    return factory


def triple_hinges(labels, embeddings, loss, distances=None):
    """The fixture's hinge arguments (`tftriplet_conformance.reference.triple_hinges`)."""
    from tftriplet_conformance import reference

    distance = loss.get("distance", "euclidean")
    return reference.triple_hinges(labels, embeddings, loss["margin"], distance, distances)


def mining_decisions(labels, embeddings, loss, distances=None):
    """What decides a mining strategy: hinges, row differences, Euclidean distances
    (`tftriplet_conformance.reference.decision_values`)."""
    from tftriplet_conformance import reference

    options = options_of(loss)
    return reference.decision_values(
        labels,
        embeddings,
        options["name"],
        options["margin"],
        options["distance"],
        distances=distances,
    )


@dataclass(frozen=True)
class Variant:
    """How to compute one loss variant.

    Attributes:
        reference: `(labels, embeddings, loss) -> dict` in float64 NumPy, with the outputs
            named in `outputs` plus `gradient`.
        keras: `(loss, dtype, hints=None, memory=None) -> (loss_fn, statistics_fn)`;
            `loss_fn(labels, embeddings)` is the scalar loss (the public
            `keras.losses.Loss`, with a cross-batch memory for a `memory` object),
            `statistics_fn` returns a dict of the non-gradient outputs.
        c_name: the loss id the C program takes, or `None` if it does not implement it.
        outputs: the scalar outputs a fixture stores for this variant.
        counts: those outputs that are integer counts (compared exactly by default).
        hinges: `(labels, embeddings, loss) -> 1-D array` of the float64 hinge arguments
            whose sign decides `num_positive`; random cases pick their margin clear of them.
        decisions: `(labels, embeddings, loss, distances=None) -> 1-D array` of every value
            whose sign decides a count or a selection (`hinges` if `None`); tie-clear
            cases keep all of them away from 0, with the same signs in float32.
        denominator: the count the loss is divided by with the hinge (half-precision
            tolerances allow for one near-tie flip in it).
    """

    reference: Callable
    keras: Callable
    c_name: str | None
    outputs: tuple[str, ...]
    counts: tuple[str, ...]
    hinges: Callable | None = None
    decisions: Callable | None = None
    denominator: str = "num_positive"


VARIANTS = {
    "batch_all": Variant(
        reference=_reference,
        keras=_keras_factory("BatchAllTripletLoss", "batch_all_triplet_statistics"),
        c_name="batch_all",
        outputs=("loss", "fraction_positive", "num_positive", "num_valid"),
        counts=("num_positive", "num_valid"),
        hinges=triple_hinges,
    ),
    "batch_hard": Variant(
        reference=_reference,
        keras=_keras_factory("BatchHardTripletLoss", "batch_hard_triplet_statistics"),
        c_name=None,
        outputs=("loss", "num_anchors", "num_positive"),
        counts=("num_anchors", "num_positive"),
        hinges=triple_hinges,
        decisions=mining_decisions,
        denominator="num_anchors",
    ),
    "semi_hard": Variant(
        reference=_reference,
        keras=_keras_factory("SemiHardTripletLoss", "semi_hard_triplet_statistics", has_soft=False),
        c_name=None,
        outputs=("loss", "num_pairs", "num_positive"),
        counts=("num_pairs", "num_positive"),
        hinges=triple_hinges,
        decisions=mining_decisions,
        denominator="num_pairs",
    ),
}


def keras_callables(fixture, dtype):
    """`(loss_fn, statistics_fn)` of the tftriplet Keras loss for `fixture` in `dtype`: its
    variant's `keras` factory with the fixture's `loss`, `hints` and `memory`."""
    return variant_of(fixture).keras(fixture["loss"], dtype, fixture.get("hints"),
                                     fixture.get("memory"))


def variant_of(case):
    """The `Variant` of a fixture, or a `KeyError` naming the known ones."""
    name = case["loss"]["name"]
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; known: {sorted(VARIANTS)}") from None
