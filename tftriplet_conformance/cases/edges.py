"""The seed program's own case and the edge cases of the batch-all hinge's definition."""

from __future__ import annotations

from tftriplet_conformance.cases.inputs import (
    EXACT_IN_HALF_PRECISION,
    clear_margin,
    edge_case,
    fixed_grid,
    loss_spec,
)
from tftriplet_conformance.cases.registry import case
from tftriplet_conformance.glibc_rand import seed_program_inputs

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
    return edge_case(
        "Hinges exactly 0 (d_ap == d_an, margin 0): not positive, subgradient 0",
        [0, 0, 1, 1],
        [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -0.5]],
        loss_spec("batch_all", 0.0, "squared_euclidean"),
        "hand-written: |e0 - e1| == |e0 - e2|",
        tolerances=EXACT_IN_HALF_PRECISION,
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
