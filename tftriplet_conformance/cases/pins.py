"""Cases that pin a rule of the contract which a plausible implementation gets wrong.

Each one kills a mutant of `tests/conformance/mutants.py` that every other fixture lets
pass. The tie cases use small integers: every distance and every intermediate (also
`|a|^2 - 2ab + |b|^2` in float32, and half precision) is exact, so the tie is exact in
every dtype, and their half-precision tolerances stay exact (`EXACT_IN_HALF_PRECISION`).
"""

from __future__ import annotations

from tftriplet_conformance.cases.inputs import (
    EXACT_IN_HALF_PRECISION,
    clear_margin,
    edge_case,
    fixed_grid,
    loss_spec,
)
from tftriplet_conformance.cases.registry import case


@case
def batch_hard_soft_num_positive():
    # rows on a line; anchor: (hardest positive, hardest negative) -> x = d_ap - d_an:
    # 0: (1, 3) -> -2; 1: (0, 3) -> -1; 3: (4.5, 1) -> -0.5; 4.5: (3, 1) -> -2.
    # x + 1.25 > 0 for anchors 1 and 3 only: num_positive 2 of 4, though every softplus is
    # positive and every x is negative
    return edge_case(
        "batch-hard, soft: num_positive counts x + margin > 0 (2 of 4 anchors), margin unused",
        [0, 0, 1, 1],
        [[0.0], [1.0], [3.0], [4.5]],
        loss_spec("batch_hard", 1.25, soft=True),
        "hand-written: four rows on a line, two classes",
        tie_clear=True,
    )


@case
def semi_hard_exact_tie_not_farther():
    # anchor 0, positive 1 (d_ap = 1): negative -1 at d = 1 exactly is not farther, so
    # the negative 2 is taken (hinge 1 - 2 + 0.5 < 0); likewise for anchor 1, positive 0
    return edge_case(
        "semi-hard: a negative exactly at the positive's distance is not farther (strict >)",
        [0, 0, 1, 1],
        [[0.0], [1.0], [-1.0], [2.0]],
        loss_spec("semi_hard", 0.5),
        "hand-written: four rows on a line, d(anchor, negative) == d(anchor, positive)",
        tolerances=EXACT_IN_HALF_PRECISION,
    )


def _hinge_exactly_zero(name):
    # rows 0, 1 | 4, 6 on a line, margin 3: the triples chosen for anchor 0 (positive 1,
    # negative 4) and anchor 6 (positive 4, negative 1) have d_ap - d_an + 3 == 0 exactly
    return edge_case(
        f"{name.replace('_', '-')}: the chosen triple's hinge is exactly 0: not positive, "
        "subgradient 0",
        [0, 0, 1, 1],
        [[0.0], [1.0], [4.0], [6.0]],
        loss_spec(name, 3.0),
        "hand-written: four rows on a line, margin 3",
        tolerances=EXACT_IN_HALF_PRECISION,
    )


@case
def batch_hard_exact_tie_hinge_zero():
    return _hinge_exactly_zero("batch_hard")


@case
def semi_hard_exact_tie_hinge_zero():
    return _hinge_exactly_zero("semi_hard")


@case
def labels_equal_mod_2pow32():
    low = -(2**63)
    labels = [5, 5 + 2**32, 5, 5 + 2**32, low, 0, low, 0]
    embeddings = fixed_grid(360, len(labels), 3)
    loss = loss_spec("batch_all", 0.0)
    loss["margin"] = clear_margin(labels, embeddings, loss, 0.3)
    return edge_case(
        "Labels equal mod 2**32 (5 and 5 + 2**32, -2**63 and 0) stay distinct: no int32 wrap",
        labels,
        embeddings,
        loss,
        "glibc rand() after srand(360), grid embeddings; margin by clear_margin",
        tie_clear=True,
    )
