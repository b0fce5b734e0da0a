"""The cases of the optional feature `memory`: a sequence of batches through one memory.

Each `MemoryCase` draws its batches with glibc `rand()` after `srand(seed)` (labels, then
grid rows, batch after batch) and picks the margin clear of every hinge root of every
step's pool (the batch's anchors against the batch and the memory it sees). The stream is
longer than the memory, so entries get evicted; some cases warm up first, one has a batch
larger than the memory, one a smaller last batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np

from tftriplet_conformance.cases.inputs import (
    clear_of_roots,
    grid_embeddings,
    loss_spec,
    random_labels,
)
from tftriplet_conformance.cases.random_case import DISTANCE_WORDS
from tftriplet_conformance.cases.registry import register_optional
from tftriplet_conformance.glibc_rand import GlibcRand

#: The optional feature these cases belong to (`tftriplet_conformance.optional`).
FEATURE = "memory"


@dataclass(frozen=True)
class MemoryCase:
    """A random sequence of batches through a memory of `size` samples.

    Attributes:
        seed: the `srand` seed.
        batch_sizes: the rows of each batch, in order.
        dim: D, the length of a row.
        num_classes: labels are `rand() % num_classes`.
        size: the memory's size (samples).
        warmup: batches before the memory is used.
        name: the loss variant.
        distance: `euclidean`, `squared_euclidean` or `cosine`.
        soft: the soft margin.
        target_margin: the margin is chosen clear of ties near this.
    """

    seed: int
    batch_sizes: tuple = field(default=(6, 6, 6, 6))
    dim: int = 3
    num_classes: int = 3
    size: int = 10
    warmup: int = 0
    name: str = "batch_all"
    distance: str = "euclidean"
    soft: bool = False
    target_margin: float = 0.3


SQUARED = "squared_euclidean"

#: name -> `MemoryCase`. Names start with `memory_`.
MEMORY_CASES = {
    "memory_batch_all_n10": MemoryCase(301, (6, 6, 6, 6, 4)),
    "memory_batch_all_n8_warmup1_squared": MemoryCase(
        302, (5, 5, 5, 5), size=8, warmup=1, distance=SQUARED, target_margin=0.5
    ),
    "memory_batch_all_soft_n12_cosine": MemoryCase(
        303, (6, 6, 6, 6), size=12, distance="cosine", soft=True, target_margin=0.2
    ),
    "memory_batch_all_n4_smaller_than_batch": MemoryCase(304, (6, 6, 6), size=4),
    "memory_batch_hard_n10": MemoryCase(305, (6, 6, 6, 6), name="batch_hard"),
    "memory_batch_hard_soft_n9_warmup1": MemoryCase(
        306, (5, 5, 5, 5), size=9, warmup=1, name="batch_hard", soft=True
    ),
    "memory_semi_hard_n10": MemoryCase(307, (6, 6, 6, 6), name="semi_hard"),
    "memory_semi_hard_n7_squared": MemoryCase(
        308, (5, 5, 5, 5), size=7, name="semi_hard", distance=SQUARED, target_margin=0.5
    ),
}


def draw_steps(record):
    """The case's batches: `[(labels, embeddings), ...]` from one generator."""
    gen = GlibcRand(record.seed)
    steps = []
    for b in record.batch_sizes:
        labels = random_labels(gen, b, record.num_classes)
        steps.append((labels, grid_embeddings(gen, b, record.dim)))
    return steps


def pooled_hinges(steps, loss, size, warmup):
    """Every step's hinge arguments `d(i,j) - d(i,k) + margin` (anchors in the batch)."""
    from tftriplet_conformance import reference

    values = [
        reference.triple_hinges(np.array(labels, np.int64), rows, loss["margin"],
                                loss["distance"], anchors=b)
        for labels, rows, b in reference.memory_pools(steps, size, warmup)
    ]
    return np.concatenate(values)


def clear_pooled_margin(steps, loss, size, warmup, target):
    """The margin near `target` farthest from every pooled hinge root, as a short decimal
    (`tftriplet_conformance.cases.inputs.clear_of_roots`, over every step)."""
    return clear_of_roots(-pooled_hinges(steps, {**loss, "margin": 0.0}, size, warmup), target)


def memory_case(record):
    """The case of a `MemoryCase`: its batches, memory, a margin clear of ties, provenance."""
    steps = draw_steps(record)
    loss = loss_spec(record.name, 0.0, record.distance, record.soft)
    loss["margin"] = clear_pooled_margin(steps, loss, record.size, record.warmup,
                                         record.target_margin)
    sizes = ", ".join(map(str, record.batch_sizes))
    warm = f", warm-up {record.warmup}" if record.warmup else ""
    strategy = record.name.replace("_", "-") + (", soft" if record.soft else "")
    description = (
        f"{strategy}, memory {record.size}{warm}: batches of {sizes}, D={record.dim}, "
        f"{record.num_classes} classes, {DISTANCE_WORDS[record.distance]}"
    )
    method = (
        f"glibc rand() after srand({record.seed}), batch after batch: labels rand() % "
        f"{record.num_classes}, then rows (rand() % 2048 - 1024) / 1024; margin chosen by "
        "tftriplet_conformance.cases.memory.clear_pooled_margin"
    )
    return {
        "description": description,
        "provenance": {"method": method, "seed": record.seed},
        "loss": loss,
        "memory": {"size": record.size, "warmup": record.warmup},
        "steps": steps,
        "tie_clear": True,
    }


def register_memory_cases(feature):
    """Register every `MEMORY_CASES` entry as a case of the optional `feature`."""
    for name, record in MEMORY_CASES.items():
        where = f"{__name__}.MEMORY_CASES[{name!r}]"
        register_optional(feature, name, partial(memory_case, record), where)
