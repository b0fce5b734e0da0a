"""A random, tie-clear case as a named record, and the builder of its inputs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

from tftriplet_conformance.cases.inputs import (
    balanced_labels,
    clear_margin,
    grid_embeddings,
    loss_spec,
    random_labels,
)
from tftriplet_conformance.cases.registry import register
from tftriplet_conformance.glibc_rand import GlibcRand

DISTANCE_WORDS = {"euclidean": "Euclidean", "squared_euclidean": "squared", "cosine": "cosine"}


@dataclass(frozen=True)
class RandomCase:
    """A random case: glibc `rand()` after `srand(seed)` draws its labels, then its rows.

    Attributes:
        seed: the `srand` seed.
        batch_size: B, the number of rows.
        dim: D, the length of a row.
        num_classes: labels are `rand() % num_classes`, or P x K if `per_class` is set.
        name: the loss variant (`batch_all`, `batch_hard`, `semi_hard`).
        distance: `euclidean`, `squared_euclidean` or `cosine`.
        soft: the soft margin.
        scale: the rows are `scale` times the grid of multiples of 2**-10 in [-1, 1).
        target_margin: the margin is chosen clear of ties near this (default: a fifth of
            a typical distance, so that a fair share of triples is positive).
        per_class: K, for a P x K batch (`batch_size == num_classes * per_class`).
        method: batch-all's evaluation method in tftriplet's kernels (a hint).
        anchor_block: anchors per block of tftriplet's blocked forms (a hint).
    """

    seed: int
    batch_size: int
    dim: int
    num_classes: int
    name: str = "batch_all"
    distance: str = "euclidean"
    soft: bool = False
    scale: float = 1.0
    target_margin: float | None = None
    per_class: int | None = None
    method: str | None = None
    anchor_block: int | None = None


def _labels(record, gen):
    """`(labels, how they were drawn, the classes in words)`."""
    if record.per_class is None:
        labels = random_labels(gen, record.batch_size, record.num_classes)
        return labels, f"labels rand() % {record.num_classes}", f"{record.num_classes} classes"
    if record.batch_size != record.num_classes * record.per_class:
        raise ValueError(
            f"B={record.batch_size} is not {record.num_classes} classes x {record.per_class}"
        )
    labels = balanced_labels(gen, record.num_classes, record.per_class)
    words = (
        f"labels {record.num_classes} classes x {record.per_class} shuffled by Fisher-Yates "
        "with rand()"
    )
    return labels, words, f"{record.num_classes} classes x {record.per_class}"


def target_margin(record):
    """The margin a case's `clear_margin` aims at: the record's `target_margin`, else a fifth
    of a typical distance between two of its rows (so that a fair share of triples is
    positive)."""
    if record.target_margin is not None:
        return record.target_margin
    typical = {
        "euclidean": math.sqrt(2 * record.dim / 3) * record.scale,
        "squared_euclidean": 2 * record.dim / 3 * record.scale**2,
        "cosine": 1.0,
    }[record.distance]
    return typical / 5


def _description(record, margin, class_words):
    """One line, at most 100 characters: the variant, the sizes, the margin."""
    strategy = ""
    if record.name != "batch_all" or record.soft or record.method:
        strategy = record.name.replace("_", "-") + (", soft, " if record.soft else ", ")
        if record.anchor_block:  # short: descriptions are at most 100 characters
            strategy += f"{record.method}, block {record.anchor_block}, "
        elif record.method:
            strategy += f"method {record.method}, "
    scaled = "" if record.scale == 1.0 else f", scale {record.scale:g}"
    return (
        f"{strategy}Random B={record.batch_size}, D={record.dim}, {class_words}, "
        f"{DISTANCE_WORDS[record.distance]}{scaled}, margin {margin:g} clear of ties"
    )


def random_case(record):
    """The case of a `RandomCase`: its inputs, a margin clear of ties, its provenance."""
    gen = GlibcRand(record.seed)
    labels, label_words, class_words = _labels(record, gen)
    embeddings = grid_embeddings(gen, record.batch_size, record.dim, record.scale)
    loss = loss_spec(record.name, 0.0, record.distance, record.soft)
    loss["margin"] = clear_margin(labels, embeddings, loss, target_margin(record))
    hints = {"method": record.method, "anchor_block": record.anchor_block}
    method = (
        f"glibc rand() after srand({record.seed}): {label_words}, "
        f"embeddings {record.scale} * (rand() % 2048 - 1024) / 1024; margin chosen by "
        "tftriplet_conformance.cases.inputs.clear_margin"
    )
    return {
        "description": _description(record, loss["margin"], class_words),
        "provenance": {"method": method, "seed": record.seed},
        "labels": labels,
        "embeddings": embeddings,
        "loss": loss,
        "hints": {key: value for key, value in hints.items() if value is not None},
        "tie_clear": True,
    }


def register_table(table, module, table_name):
    """Register every `{name: RandomCase}` of `table`, defined as `module.table_name`."""
    for name, record in table.items():
        register(name, partial(random_case, record), f"{module}.{table_name}[{name!r}]")
