"""The cases: one small function per fixture, registered by name (a duplicate is an error).

Inputs come from glibc's ``rand()`` reimplemented in pure Python
(:mod:`tftriplet_conformance.glibc_rand`), so they are the same on every machine and NumPy version.
Random embeddings lie on a grid of multiples of 2**-10 in [-1, 1): exact in float32 and
float16, so a float32 backend sees exactly the fixture's inputs and its error is its own.
Random cases choose their margin in the widest gap between hinge roots, so that no valid
triple sits near a tie (``d(i,j) - d(i,k) + margin`` near 0) and the counts are exact.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from tftriplet_conformance.glibc_rand import GlibcRand, seed_program_inputs
from tftriplet_conformance.variants import variant_of

#: name -> function returning the case's inputs (see :func:`case`).
CASES = {}

GRID_BITS = 10


def case(function):
    """Register ``function`` as the case named after it; a duplicate name is an error."""
    name = function.__name__
    if name in CASES:
        raise ValueError(f"duplicate conformance case name {name!r}")
    CASES[name] = function
    return function


def loss_spec(name, margin, distance="euclidean", soft=False):
    """A fixture's ``loss`` object; ``soft`` is written only when true."""
    loss = {"name": name, "margin": margin, "distance": distance}
    if soft:
        loss["soft"] = True
    return loss


def grid_embeddings(gen, batch_size, dim, scale=1.0):
    """Values ``scale * n / 2**10`` with ``n`` uniform in ``[-2**10, 2**10)`` from ``rand()``."""
    half = 2**GRID_BITS
    return [
        [scale * ((gen.rand() % (2 * half)) - half) / half for _ in range(dim)]
        for _ in range(batch_size)
    ]


def random_labels(gen, batch_size, num_classes):
    return [gen.rand() % num_classes for _ in range(batch_size)]


def balanced_labels(gen, num_classes, per_class):
    """P x K labels: each class ``per_class`` times, in a Fisher-Yates order from ``gen``."""
    labels = [c for c in range(num_classes) for _ in range(per_class)]
    for i in range(len(labels) - 1, 0, -1):
        j = gen.rand() % (i + 1)
        labels[i], labels[j] = labels[j], labels[i]
    return labels


def clear_margin(labels, embeddings, loss, target):
    """The margin near ``target`` farthest from every hinge root, as a short decimal.

    A hinge ``d(i,j) - d(i,k) + m`` is 0 at ``m = d(i,k) - d(i,j)``; this picks the middle
    of the widest gap between those roots within ``[target / 2, 3 * target / 2]``, rounded
    to the fewest decimals that keep it well inside the gap.
    """
    hinges = variant_of({"loss": loss}).hinges
    roots = -(hinges(labels, embeddings, {**loss, "margin": 0.0}))
    low, high = target / 2, 3 * target / 2
    inside = np.unique(roots[(roots > low) & (roots < high)])
    edges = np.concatenate([[low], inside, [high]])
    gaps = np.diff(edges)
    widest = int(np.argmax(gaps))
    middle = (edges[widest] + edges[widest + 1]) / 2
    digits = max(0, -math.floor(math.log10(gaps[widest] / 8)))
    return round(float(middle), digits)


def random_case(
    seed,
    batch_size,
    dim,
    num_classes,
    squared=False,
    target_margin=None,
    scale=1.0,
    name="batch_all",
    distance=None,
    soft=False,
    method=None,
    per_class=None,
    anchor_block=None,
):
    """A tie-clear random case (see the module docstring); ``per_class`` makes it a P x K
    batch (``batch_size = num_classes * per_class``); ``anchor_block`` is written into the
    loss object for the Keras backends (how many anchors a blocked form takes at a time)."""
    distance = distance or ("squared_euclidean" if squared else "euclidean")
    gen = GlibcRand(seed)
    if per_class is None:
        labels = random_labels(gen, batch_size, num_classes)
        label_words = f"labels rand() % {num_classes}"
        class_words = f"{num_classes} classes"
    else:
        if batch_size != num_classes * per_class:
            raise ValueError(f"B={batch_size} is not {num_classes} classes x {per_class}")
        labels = balanced_labels(gen, num_classes, per_class)
        label_words = (
            f"labels {num_classes} classes x {per_class} shuffled by Fisher-Yates with rand()"
        )
        class_words = f"{num_classes} classes x {per_class}"
    embeddings = grid_embeddings(gen, batch_size, dim, scale)
    if target_margin is None:
        # about a fifth of a typical distance, so that a fair share of triples is positive
        typical = {
            "euclidean": math.sqrt(2 * dim / 3) * scale,
            "squared_euclidean": 2 * dim / 3 * scale**2,
            "cosine": 1.0,
        }[distance]
        target_margin = typical / 5
    loss = loss_spec(name, 0.0, distance, soft)
    loss["margin"] = clear_margin(labels, embeddings, loss, target_margin)
    if method is not None:
        loss["method"] = method
    if anchor_block is not None:
        loss["anchor_block"] = anchor_block
    words = {"euclidean": "Euclidean", "squared_euclidean": "squared", "cosine": "cosine"}
    scaled = "" if scale == 1.0 else f", scale {scale:g}"
    strategy = ""
    if name != "batch_all" or soft or method:
        strategy = name.replace("_", "-") + (", soft, " if soft else ", ")
        if anchor_block:  # short: descriptions are at most 100 characters
            strategy += f"{method}, block {anchor_block}, "
        elif method:
            strategy += f"method {method}, "
    return {
        "description": (
            f"{strategy}Random B={batch_size}, D={dim}, {class_words}, "
            f"{words[distance]}{scaled}, margin {loss['margin']:g} clear of ties"
        ),
        "provenance": {
            "method": (
                f"glibc rand() after srand({seed}): {label_words}, "
                f"embeddings {scale} * (rand() % 2048 - 1024) / 1024; margin chosen by "
                "conformance.cases.clear_margin"
            ),
            "seed": seed,
        },
        "labels": labels,
        "embeddings": embeddings,
        "loss": loss,
        "tie_clear": True,
    }


def edge_case(description, labels, embeddings, loss, method, tie_clear=False, **extra):
    return {
        "description": description,
        "provenance": {"method": method},
        "labels": labels,
        "embeddings": embeddings,
        "loss": loss,
        "tie_clear": tie_clear,
        **extra,
    }


def fixed_grid(seed, batch_size, dim):
    return grid_embeddings(GlibcRand(seed), batch_size, dim)


# --- the seed ----------------------------------------------------------------------------


@case
def seed_c_program():
    labels, embeddings = seed_program_inputs(batch_size=10, vector_size=128, num_classes=3)
    return {
        "description": "The seed C program's main(): B=10, D=128, 3 classes, margin 0.2",
        "provenance": {
            "method": (
                "C program main() (conformance/c/seed_program.c): glibc rand() with the "
                "default seed 1, labels rand() % 3, embeddings rand() / RAND_MAX"
            ),
            "seed": 1,
        },
        "labels": labels,
        "embeddings": embeddings,
        "loss": loss_spec("batch_all", 0.2),
        "tie_clear": True,
        "printed": "The triplet loss is {loss:f} with positives {fraction_positive:f}",
    }


@case
def seed_inputs_squared():
    labels, embeddings = seed_program_inputs(batch_size=10, vector_size=128, num_classes=3)
    loss = loss_spec("batch_all", 0.0, "squared_euclidean")
    loss["margin"] = clear_margin(labels, embeddings, loss, 2.0)
    return {
        "description": "The seed program's inputs with squared distances",
        "provenance": {
            "method": "seed program main() inputs (glibc rand(), seed 1); margin by clear_margin",
            "seed": 1,
        },
        "labels": labels,
        "embeddings": embeddings,
        "loss": loss,
        "tie_clear": True,
    }


# --- random, tie-clear -------------------------------------------------------------------


#: name: (srand seed, batch size, dimension, number of classes, options)
RANDOM_CASES = {
    "random_b2_d3_c2": (101, 2, 3, 2, {}),
    "random_b3_d2_c2": (121, 3, 2, 2, {}),
    "random_b4_d256_c2": (103, 4, 256, 2, {}),
    "random_b5_d7_c3_squared": (104, 5, 7, 3, {"squared": True}),
    "random_b8_d16_c2_squared": (105, 8, 16, 2, {"squared": True}),
    "random_b12_d32_c3": (106, 12, 32, 3, {}),
    "random_b16_d8_c4_squared": (107, 16, 8, 4, {"squared": True}),
    "random_b20_d48_c5": (108, 20, 48, 5, {}),
    "random_b24_d4_c12": (109, 24, 4, 12, {}),
    "random_b32_d3_c8_squared": (110, 32, 3, 8, {"squared": True}),
    "random_b48_d3_c16": (111, 48, 3, 16, {}),
    "random_b64_d2_c32": (112, 64, 2, 32, {}),
    "random_b96_d1_c48_squared": (113, 96, 1, 48, {"squared": True}),
    "random_b128_d2_c64": (114, 128, 2, 64, {}),
    "random_b128_d1_c128": (115, 128, 1, 128, {}),
    "random_b10_d6_c10": (116, 10, 6, 10, {}),
    "random_b16_d8_c3_scale64": (117, 16, 8, 3, {"scale": 64.0}),
    "random_b16_d8_c3_scale_small": (118, 16, 8, 3, {"scale": 2.0**-6}),
    "random_b12_d4_c3_margin_large": (119, 12, 4, 3, {"target_margin": 20.0}),
    "random_b12_d4_c3_margin_small": (120, 12, 4, 3, {"target_margin": 0.01}),
}


def _register_random_cases(table):
    for name, (seed, batch_size, dim, num_classes, options) in table.items():
        spec = functools.partial(random_case, seed, batch_size, dim, num_classes, **options)
        spec.__name__ = name
        case(spec)


_register_random_cases(RANDOM_CASES)


# --- edge cases --------------------------------------------------------------------------


@case
def duplicate_embeddings():
    emb = fixed_grid(201, 6, 5)
    emb[1] = list(emb[0])  # same class as row 0
    emb[4] = list(emb[0])  # a different class from row 0
    return edge_case(
        "Identical embeddings within and across classes (zero distances off the diagonal)",
        [0, 0, 1, 1, 2, 2],
        emb,
        loss_spec("batch_all", 0.2),
        "glibc rand() after srand(201), grid embeddings; rows 1 and 4 copied from row 0",
    )


@case
def duplicate_embeddings_squared():
    emb = fixed_grid(202, 6, 5)
    emb[2] = list(emb[3])
    emb[5] = list(emb[3])
    return edge_case(
        "Identical embeddings, squared distances",
        [0, 1, 0, 1, 0, 1],
        emb,
        loss_spec("batch_all", 0.2, "squared_euclidean"),
        "glibc rand() after srand(202), grid embeddings; rows 2 and 5 copied from row 3",
    )


@case
def collapsed_batch():
    row = [0.25, -0.5, 0.125]
    return edge_case(
        "Collapsed batch: every embedding equal, loss = margin, gradient 0",
        [0, 1, 0, 1, 2],
        [list(row) for _ in range(5)],
        loss_spec("batch_all", 0.2),
        "hand-written: one row repeated",
    )


@case
def collapsed_batch_squared():
    return edge_case(
        "Collapsed batch (all zeros) with squared distances",
        [3, 3, 4, 4],
        [[0.0, 0.0] for _ in range(4)],
        loss_spec("batch_all", 0.5, "squared_euclidean"),
        "hand-written: zero rows",
    )


@case
def batch_size_1():
    return edge_case(
        "B=1: no triple, loss 0",
        [7],
        [[0.5, -0.25, 1.0]],
        loss_spec("batch_all", 0.2),
        "hand-written",
    )


@case
def batch_size_2_same_label():
    return edge_case(
        "B=2, same label: no negative, no valid triple",
        [1, 1],
        [[0.0, 1.0], [1.0, 0.0]],
        loss_spec("batch_all", 0.2),
        "hand-written",
    )


@case
def batch_size_2_different_labels():
    return edge_case(
        "B=2, different labels: no positive pair, no valid triple",
        [1, 2],
        [[0.0, 1.0], [1.0, 0.0]],
        loss_spec("batch_all", 0.2),
        "hand-written",
    )


@case
def one_class():
    return edge_case(
        "One class only: no negatives, loss 0",
        [4] * 6,
        fixed_grid(203, 6, 3),
        loss_spec("batch_all", 0.2),
        "glibc rand() after srand(203), grid embeddings",
    )


@case
def all_distinct_labels():
    return edge_case(
        "All labels distinct: no positive pair, loss 0",
        [0, 1, 2, 3, 4, 5, 6],
        fixed_grid(204, 7, 3),
        loss_spec("batch_all", 0.2),
        "glibc rand() after srand(204), grid embeddings",
    )


@case
def no_positive_triple():
    return edge_case(
        "Two far clusters: valid triples, none positive (loss 0, fraction 0)",
        [0, 0, 0, 1, 1, 1],
        [[0.0, 0.0], [0.125, 0.0], [0.0, 0.125], [8.0, 8.0], [8.125, 8.0], [8.0, 8.125]],
        loss_spec("batch_all", 0.5),
        "hand-written clusters",
        tie_clear=True,
    )


@case
def labels_2pow24_neighbours():
    emb = fixed_grid(205, 6, 4)
    base = 2**24
    return edge_case(
        "Labels 16777216 and 16777217 stay distinct (equal once cast to float32)",
        [base, base + 1, base, base + 1, base, base + 1],
        emb,
        loss_spec("batch_all", 0.3),
        "glibc rand() after srand(205), grid embeddings; labels 2**24 and 2**24 + 1",
    )


@case
def labels_2pow40_plus_k():
    emb = fixed_grid(206, 8, 3)
    base = 2**40
    return edge_case(
        "Labels 2**40 + k for k in 0..3 stay distinct (merge in float32, wrap in int32)",
        [base + k for k in (0, 1, 2, 3, 0, 1, 2, 3)],
        emb,
        loss_spec("batch_all", 0.3),
        "glibc rand() after srand(206), grid embeddings; labels 2**40 + k",
    )


@case
def negative_labels():
    return edge_case(
        "Negative and zero labels are ordinary class ids",
        [-1, -2, 0, -1, -2, 0, -1],
        fixed_grid(207, 7, 3),
        loss_spec("batch_all", 0.3),
        "glibc rand() after srand(207), grid embeddings",
    )


@case
def int64_extreme_labels():
    low, high = -(2**63), 2**63 - 1
    return edge_case(
        "Labels at the int64 extremes, and their neighbours",
        [low, high, low, high, low + 1, high - 1],
        fixed_grid(208, 6, 3),
        loss_spec("batch_all", 0.3),
        "glibc rand() after srand(208), grid embeddings",
    )


@case
def exact_tie_hinge_zero():
    # squared distances of small dyadic vectors are exact in every float type, so
    # d(0, 1) == d(0, 2) exactly and, with margin 0, the hinge is exactly 0 there.
    # The generic half-precision tolerances assume a tie may flip; here every value and
    # every intermediate is exact in half precision too, so the ties stay ties.
    exact = {"atol": 1e-6, "gradient_atol": 1e-6, "count_atol": 0}
    return edge_case(
        "Hinges exactly 0 (d_ap == d_an, margin 0): not positive, subgradient 0",
        [0, 0, 1, 1],
        [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -0.5]],
        loss_spec("batch_all", 0.0, "squared_euclidean"),
        "hand-written: |e0 - e1| == |e0 - e2|",
        tolerances={"float16": exact, "bfloat16": exact},
    )


@case
def margin_zero_random():
    emb = fixed_grid(209, 9, 4)
    return edge_case(
        "Margin 0: a triple counts only when the positive is strictly farther",
        [0, 1, 2, 0, 1, 2, 0, 1, 2],
        emb,
        loss_spec("batch_all", 0.0),
        "glibc rand() after srand(209), grid embeddings",
    )


# --- mining strategies, soft margin, cosine distance ---------------------------------------


#: Random tie-clear cases of the other variants: small B and D keep the files small. Their
#: tie check covers every value whose sign decides a selection (the hardest positive and
#: negative, the semi-hard negative), not only the hinges: see ``variants.mining_decisions``.
VARIANT_RANDOM_CASES = {
    "batch_hard_b8_d4_c3": (301, 8, 4, 3, {"name": "batch_hard"}),
    "batch_hard_b12_d6_c4_squared": (302, 12, 6, 4, {"name": "batch_hard", "squared": True}),
    "batch_hard_b10_d5_c3_cosine": (303, 10, 5, 3, {"name": "batch_hard", "distance": "cosine"}),
    "batch_hard_soft_b10_d4_c3": (304, 10, 4, 3, {"name": "batch_hard", "soft": True}),
    "batch_hard_soft_b8_d4_c2_squared": (
        305,
        8,
        4,
        2,
        {"name": "batch_hard", "soft": True, "squared": True},
    ),
    "batch_hard_soft_b9_d3_c3_cosine": (
        306,
        9,
        3,
        3,
        {"name": "batch_hard", "soft": True, "distance": "cosine"},
    ),
    "batch_hard_soft_b8_d4_c3_scale256": (
        307,
        8,
        4,
        3,
        {"name": "batch_hard", "soft": True, "scale": 256.0},
    ),
    "semi_hard_b8_d4_c3": (311, 8, 4, 3, {"name": "semi_hard"}),
    "semi_hard_b12_d6_c4_squared": (312, 12, 6, 4, {"name": "semi_hard", "squared": True}),
    "semi_hard_b10_d5_c3_cosine": (313, 10, 5, 3, {"name": "semi_hard", "distance": "cosine"}),
    "semi_hard_b16_d3_c4": (314, 16, 3, 4, {"name": "semi_hard"}),
    "batch_all_soft_b8_d4_c3": (321, 8, 4, 3, {"soft": True}),
    "batch_all_soft_b10_d6_c3_squared": (322, 10, 6, 3, {"soft": True, "squared": True}),
    "batch_all_soft_b8_d4_c3_scale256": (323, 8, 4, 3, {"soft": True, "scale": 256.0}),
    "batch_all_soft_b9_d4_c3_cosine": (324, 9, 4, 3, {"soft": True, "distance": "cosine"}),
    "batch_all_cosine_b10_d5_c3": (325, 10, 5, 3, {"distance": "cosine"}),
    "batch_all_cosine_b12_d8_c4": (326, 12, 8, 4, {"distance": "cosine"}),
}


_register_random_cases(VARIANT_RANDOM_CASES)


def _singletons(name, seed):
    labels = [0, 0, 0, 1, 2, 2, 3, 4]
    emb = fixed_grid(seed, len(labels), 3)
    loss = loss_spec(name, 0.0)
    loss["margin"] = clear_margin(labels, emb, loss, 0.3)
    return edge_case(
        f"{name.replace('_', '-')}: anchors without a positive (labels 1, 3, 4) are excluded",
        labels,
        emb,
        loss,
        f"glibc rand() after srand({seed}), grid embeddings; margin by clear_margin",
        tie_clear=True,
    )


@case
def batch_hard_singletons_excluded():
    return _singletons("batch_hard", 331)


@case
def semi_hard_singletons_excluded():
    return _singletons("semi_hard", 332)


@case
def batch_hard_one_class():
    return edge_case(
        "batch-hard, one class: no anchor has a negative, loss 0, gradient 0",
        [5] * 5,
        fixed_grid(333, 5, 3),
        loss_spec("batch_hard", 0.2),
        "glibc rand() after srand(333), grid embeddings",
    )


@case
def batch_hard_soft_all_distinct():
    return edge_case(
        "batch-hard, soft, all labels distinct: no anchor has a positive, loss 0 (not softplus)",
        [0, 1, 2, 3, 4, 5],
        fixed_grid(334, 6, 3),
        loss_spec("batch_hard", 0.2, soft=True),
        "glibc rand() after srand(334), grid embeddings",
    )


@case
def semi_hard_one_class():
    return edge_case(
        "semi-hard, one class: no pair has a negative, loss 0, gradient 0",
        [2] * 6,
        fixed_grid(335, 6, 2),
        loss_spec("semi_hard", 0.2),
        "glibc rand() after srand(335), grid embeddings",
    )


@case
def batch_all_soft_one_class():
    return edge_case(
        "batch-all, soft, one class: no valid triple, loss 0 (not softplus)",
        [1] * 4,
        fixed_grid(336, 4, 3),
        loss_spec("batch_all", 0.2, soft=True),
        "glibc rand() after srand(336), grid embeddings",
    )


@case
def semi_hard_no_farther_negative():
    # anchor 0: d_ap = 4, negatives at 0.5 and 0.75, none farther: the farthest (0.75) is
    # used; the other anchors have a negative farther than their positive
    return edge_case(
        "semi-hard: an anchor with no negative farther than its positive takes the farthest",
        [0, 0, 1, 1],
        [[0.0, 0.0], [4.0, 0.0], [0.5, 0.0], [0.0, 0.75]],
        loss_spec("semi_hard", 0.25),
        "hand-written: positive pair (0, 1) far apart, negatives near row 0",
        tie_clear=True,
    )


def _zero_row(name, seed, soft=False):
    labels = [0, 1, 0, 1, 2, 0, 2]
    emb = fixed_grid(seed, len(labels), 3)
    emb[2] = [0.0, 0.0, 0.0]
    what = name.replace("_", "-") + (", soft" if soft else "")
    return edge_case(
        f"{what}, cosine: a zero row is at distance 1 from every row, its gradient 0",
        labels,
        emb,
        loss_spec(name, 0.2, "cosine", soft),
        f"glibc rand() after srand({seed}), grid embeddings; row 2 set to zero",
    )


@case
def batch_hard_cosine_zero_row():
    return _zero_row("batch_hard", 337)


@case
def batch_hard_soft_cosine_zero_row():
    return _zero_row("batch_hard", 338, soft=True)


@case
def semi_hard_cosine_zero_row():
    return _zero_row("semi_hard", 339)


@case
def batch_all_cosine_zero_row():
    return _zero_row("batch_all", 340)


def _huge_x(name):
    # anchor 0: d_ap = 1e4, d_an = 1, x = 9999; anchor 1: x = 1e4 - 9999 = 1; anchor 2 has
    # no positive. A naive log(1 + exp(x)) overflows (exp(9999) is inf in float64).
    return edge_case(
        f"{name.replace('_', '-')}, soft: softplus(x) at x = 9999 is 9999, slope 1, no overflow",
        [0, 0, 1],
        [[0.0], [10000.0], [1.0]],
        loss_spec(name, 0.2, soft=True),
        "hand-written: rows 1e4 apart",
        tie_clear=True,
    )


@case
def batch_hard_soft_huge_x():
    return _huge_x("batch_hard")


@case
def batch_all_soft_huge_x():
    return _huge_x("batch_all")


# --- batch-all's evaluation methods (tftriplet's method="dense" | "sorted") -------------------


#: The same loss, evaluated by the sorted O(B^2) form or forced dense. ``method`` is only
#: read by the Keras backends (the reference and the C program have one method).
METHOD_CASES = {
    "batch_all_sorted_b24_d4_c12": (341, 24, 4, 12, {"method": "sorted"}),
    "batch_all_sorted_b40_d3_c10_squared": (342, 40, 3, 10, {"method": "sorted", "squared": True}),
    "batch_all_sorted_b64_d2_c16": (343, 64, 2, 16, {"method": "sorted"}),
    "batch_all_dense_b64_d2_c16": (343, 64, 2, 16, {"method": "dense"}),
    # P x K batches, 3 positives per anchor (<= B // 8): eagerly and in a TF graph without
    # XLA the sorted form sorts only the positives; under XLA and jax.jit the whole row.
    "batch_all_sorted_pk_b96_d4_p24_k4": (346, 96, 4, 24, {"method": "sorted", "per_class": 4}),
    "batch_all_sorted_pk_b64_d3_p16_k4_squared": (
        347,
        64,
        3,
        16,
        {"method": "sorted", "per_class": 4, "squared": True},
    ),
}

_register_random_cases(METHOD_CASES)


#: The sorted form with the cosine distance (always computed in anchor blocks), and the
#: soft margin in anchor blocks of the dense form (``anchor_block`` does not divide B).
#: Like ``method``, ``anchor_block`` is only read by the Keras backends.
BLOCKED_CASES = {
    "batch_all_sorted_cosine_b24_d4_c6": (348, 24, 4, 6, {"method": "sorted",
                                                          "distance": "cosine"}),
    "batch_all_sorted_cosine_pk_b40_d3_p10_k4": (
        349,
        40,
        3,
        10,
        {"method": "sorted", "distance": "cosine", "per_class": 4},
    ),
    "batch_all_sorted_blocks_b40_d3_c8": (350, 40, 3, 8, {"method": "sorted",
                                                          "anchor_block": 7}),
    "batch_all_soft_blocks_b13_d4_c3": (351, 13, 4, 3, {"soft": True, "method": "dense",
                                                        "anchor_block": 4}),
    "batch_all_soft_blocks_b12_d3_c3_cosine": (
        352,
        12,
        3,
        3,
        {"soft": True, "method": "dense", "distance": "cosine", "anchor_block": 5},
    ),
}

_register_random_cases(BLOCKED_CASES)


@case
def batch_all_sorted_one_class():
    loss = loss_spec("batch_all", 0.2)
    loss["method"] = "sorted"
    return edge_case(
        "batch-all, method sorted, one class: no valid triple, loss 0",
        [3] * 5,
        fixed_grid(344, 5, 3),
        loss,
        "glibc rand() after srand(344), grid embeddings",
    )


@case
def batch_all_sorted_duplicate_embeddings():
    emb = fixed_grid(345, 8, 3)
    emb[1] = list(emb[0])  # same class as row 0: a zero Euclidean distance
    emb[5] = list(emb[0])  # another class
    loss = loss_spec("batch_all", 0.3)
    loss["method"] = "sorted"
    return edge_case(
        "batch-all, method sorted: identical rows within and across classes",
        [0, 0, 1, 1, 2, 2, 0, 1],
        emb,
        loss,
        "glibc rand() after srand(345), grid embeddings; rows 1 and 5 copied from row 0",
    )
