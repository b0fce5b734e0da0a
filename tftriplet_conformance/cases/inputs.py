"""Drawing a case's inputs (glibc `rand()`, a grid of exact floats) and a margin clear of ties."""

from __future__ import annotations

import math

import numpy as np

from tftriplet_conformance.glibc_rand import GlibcRand
from tftriplet_conformance.variants import variant_of

#: Random embeddings are multiples of 2**-GRID_BITS in [-1, 1) (times a power of 2).
GRID_BITS = 10

#: The tolerances of a case with exact ties whose inputs, distances and every intermediate
#: are exact in half precision too (small integers and dyadic fractions), so the ties stay
#: ties in every dtype: the generator's half-precision tolerances assume a near-tie may
#: flip, which would let an implementation that breaks such a tie the wrong way pass.
EXACT_IN_HALF_PRECISION = {
    dtype: {"atol": 1e-6, "gradient_atol": 1e-6, "count_atol": 0}
    for dtype in ("float16", "bfloat16")
}


def loss_spec(name, margin, distance="euclidean", soft=False):
    """A fixture's `loss` object; `soft` is written only when true."""
    loss = {"name": name, "margin": margin, "distance": distance}
    if soft:
        loss["soft"] = True
    return loss


def grid_embeddings(gen, batch_size, dim, scale=1.0):
    """Values `scale * n / 2**10` with `n` uniform in `[-2**10, 2**10)` from `rand()`."""
    half = 2**GRID_BITS
    return [
        [scale * ((gen.rand() % (2 * half)) - half) / half for _ in range(dim)]
        for _ in range(batch_size)
    ]


def fixed_grid(seed, batch_size, dim):
    """`grid_embeddings` of a fresh generator after `srand(seed)`."""
    return grid_embeddings(GlibcRand(seed), batch_size, dim)


def random_labels(gen, batch_size, num_classes):
    """`rand() % num_classes`, `batch_size` times."""
    return [gen.rand() % num_classes for _ in range(batch_size)]


def balanced_labels(gen, num_classes, per_class):
    """P x K labels: each class `per_class` times, in a Fisher-Yates order from `gen`."""
    labels = [c for c in range(num_classes) for _ in range(per_class)]
    for i in range(len(labels) - 1, 0, -1):
        j = gen.rand() % (i + 1)
        labels[i], labels[j] = labels[j], labels[i]
    return labels


def clear_margin(labels, embeddings, loss, target):
    """The margin near `target` farthest from every hinge root, as a short decimal.

    A hinge `d(i,j) - d(i,k) + m` is 0 at `m = d(i,k) - d(i,j)`; this picks the middle
    of the widest gap between those roots within `[target / 2, 3 * target / 2]`, rounded
    to the fewest decimals that keep it well inside the gap.
    """
    hinges = variant_of({"loss": loss}).hinges
    return clear_of_roots(-(hinges(labels, embeddings, {**loss, "margin": 0.0})), target)


def clear_of_roots(roots, target):
    """The margin in `[target / 2, 3 * target / 2]` farthest from every root (where a
    hinge is 0), as a short decimal (`clear_margin`)."""
    low, high = target / 2, 3 * target / 2
    inside = np.unique(roots[(roots > low) & (roots < high)])
    edges = np.concatenate([[low], inside, [high]])
    gaps = np.diff(edges)
    widest = int(np.argmax(gaps))
    middle = (edges[widest] + edges[widest + 1]) / 2
    digits = max(0, -math.floor(math.log10(gaps[widest] / 8)))
    return round(float(middle), digits)


def edge_case(description, labels, embeddings, loss, method, tie_clear=False, **extra):
    """What a case function returns: the fixture's inputs, loss and provenance.

    `method` says in words how the inputs were made; `tie_clear` asks the generator to
    check that no decision is near a tie; `extra` may hold `hints` (how tftriplet's own
    kernels evaluate the loss), `tolerances` (per dtype) and `printed` (a format string).
    """
    return {
        "description": description,
        "provenance": {"method": method},
        "labels": labels,
        "embeddings": embeddings,
        "loss": loss,
        "tie_clear": tie_clear,
        **extra,
    }
