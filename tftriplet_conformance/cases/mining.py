"""Edge cases of the mining strategies, the soft margin, the cosine distance, and batch-all
evaluated by tftriplet's sorted form (a hint)."""

from __future__ import annotations

from tftriplet_conformance.cases.inputs import clear_margin, edge_case, fixed_grid, loss_spec
from tftriplet_conformance.cases.registry import case


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


# --- batch-all's evaluation hints (tftriplet's method="dense" | "sorted") ----------------


@case
def batch_all_sorted_one_class():
    return edge_case(
        "batch-all, method sorted, one class: no valid triple, loss 0",
        [3] * 5,
        fixed_grid(344, 5, 3),
        loss_spec("batch_all", 0.2),
        "glibc rand() after srand(344), grid embeddings",
        hints={"method": "sorted"},
    )


@case
def batch_all_sorted_duplicate_embeddings():
    emb = fixed_grid(345, 8, 3)
    emb[1] = list(emb[0])  # same class as row 0: a zero Euclidean distance
    emb[5] = list(emb[0])  # another class
    return edge_case(
        "batch-all, method sorted: identical rows within and across classes",
        [0, 0, 1, 1, 2, 2, 0, 1],
        emb,
        loss_spec("batch_all", 0.3),
        "glibc rand() after srand(345), grid embeddings; rows 1 and 5 copied from row 0",
        hints={"method": "sorted"},
    )
