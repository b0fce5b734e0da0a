"""The random, tie-clear cases: one `RandomCase` per fixture, in four tables.

`RandomCase(seed, batch_size, dim, num_classes, ...)`: see `random_case.RandomCase`.
"""

from __future__ import annotations

from tftriplet_conformance.cases.random_case import RandomCase, register_table

SQUARED = "squared_euclidean"
COSINE = "cosine"

#: The batch-all hinge over batch sizes 2..128 and dimensions 1..256.
RANDOM_CASES = {
    "random_b2_d3_c2": RandomCase(101, 2, 3, 2),
    "random_b3_d2_c2": RandomCase(121, 3, 2, 2),
    "random_b4_d256_c2": RandomCase(103, 4, 256, 2),
    "random_b5_d7_c3_squared": RandomCase(104, 5, 7, 3, distance=SQUARED),
    "random_b8_d16_c2_squared": RandomCase(105, 8, 16, 2, distance=SQUARED),
    "random_b12_d32_c3": RandomCase(106, 12, 32, 3),
    "random_b16_d8_c4_squared": RandomCase(107, 16, 8, 4, distance=SQUARED),
    "random_b20_d48_c5": RandomCase(108, 20, 48, 5),
    "random_b24_d4_c12": RandomCase(109, 24, 4, 12),
    "random_b32_d3_c8_squared": RandomCase(110, 32, 3, 8, distance=SQUARED),
    "random_b48_d3_c16": RandomCase(111, 48, 3, 16),
    "random_b64_d2_c32": RandomCase(112, 64, 2, 32),
    "random_b96_d1_c48_squared": RandomCase(113, 96, 1, 48, distance=SQUARED),
    "random_b128_d2_c64": RandomCase(114, 128, 2, 64),
    "random_b128_d1_c128": RandomCase(115, 128, 1, 128),
    "random_b10_d6_c10": RandomCase(116, 10, 6, 10),
    "random_b16_d8_c3_scale64": RandomCase(117, 16, 8, 3, scale=64.0),
    "random_b16_d8_c3_scale_small": RandomCase(118, 16, 8, 3, scale=2.0**-6),
    "random_b12_d4_c3_margin_large": RandomCase(119, 12, 4, 3, target_margin=20.0),
    "random_b12_d4_c3_margin_small": RandomCase(120, 12, 4, 3, target_margin=0.01),
}

#: The other variants: small B and D keep the files small. Their tie check covers every
#: value whose sign decides a selection (the hardest positive and negative, the semi-hard
#: negative), not only the hinges: see `variants.mining_decisions`.
VARIANT_RANDOM_CASES = {
    "batch_hard_b8_d4_c3": RandomCase(301, 8, 4, 3, "batch_hard"),
    "batch_hard_b12_d6_c4_squared": RandomCase(302, 12, 6, 4, "batch_hard", SQUARED),
    "batch_hard_b10_d5_c3_cosine": RandomCase(303, 10, 5, 3, "batch_hard", COSINE),
    "batch_hard_soft_b10_d4_c3": RandomCase(304, 10, 4, 3, "batch_hard", soft=True),
    "batch_hard_soft_b8_d4_c2_squared": RandomCase(
        305, 8, 4, 2, "batch_hard", SQUARED, soft=True
    ),
    "batch_hard_soft_b9_d3_c3_cosine": RandomCase(306, 9, 3, 3, "batch_hard", COSINE, soft=True),
    "batch_hard_soft_b8_d4_c3_scale256": RandomCase(
        307, 8, 4, 3, "batch_hard", soft=True, scale=256.0
    ),
    "semi_hard_b8_d4_c3": RandomCase(311, 8, 4, 3, "semi_hard"),
    "semi_hard_b12_d6_c4_squared": RandomCase(312, 12, 6, 4, "semi_hard", SQUARED),
    "semi_hard_b10_d5_c3_cosine": RandomCase(313, 10, 5, 3, "semi_hard", COSINE),
    "semi_hard_b16_d3_c4": RandomCase(314, 16, 3, 4, "semi_hard"),
    "batch_all_soft_b8_d4_c3": RandomCase(321, 8, 4, 3, soft=True),
    "batch_all_soft_b10_d6_c3_squared": RandomCase(322, 10, 6, 3, distance=SQUARED, soft=True),
    "batch_all_soft_b8_d4_c3_scale256": RandomCase(323, 8, 4, 3, soft=True, scale=256.0),
    "batch_all_soft_b9_d4_c3_cosine": RandomCase(324, 9, 4, 3, distance=COSINE, soft=True),
    "batch_all_cosine_b10_d5_c3": RandomCase(325, 10, 5, 3, distance=COSINE),
    "batch_all_cosine_b12_d8_c4": RandomCase(326, 12, 8, 4, distance=COSINE),
}

#: Batch-all evaluated by tftriplet's sorted O(B^2) form, or forced dense (`method`, a hint
#: only tftriplet's kernels read). P x K batches with 3 positives per anchor (<= B // 8):
#: eagerly and in a TF graph without XLA the sorted form sorts only the positives; under
#: XLA and jax.jit the whole row.
METHOD_CASES = {
    "batch_all_sorted_b24_d4_c12": RandomCase(341, 24, 4, 12, method="sorted"),
    "batch_all_sorted_b40_d3_c10_squared": RandomCase(
        342, 40, 3, 10, distance=SQUARED, method="sorted"
    ),
    "batch_all_sorted_b64_d2_c16": RandomCase(343, 64, 2, 16, method="sorted"),
    "batch_all_dense_b64_d2_c16": RandomCase(343, 64, 2, 16, method="dense"),
    "batch_all_sorted_pk_b96_d4_p24_k4": RandomCase(
        346, 96, 4, 24, per_class=4, method="sorted"
    ),
    "batch_all_sorted_pk_b64_d3_p16_k4_squared": RandomCase(
        347, 64, 3, 16, distance=SQUARED, per_class=4, method="sorted"
    ),
}

#: The sorted form with the cosine distance (always computed in anchor blocks), and the
#: soft margin in anchor blocks of the dense form (`anchor_block`, a hint like `method`,
#: does not divide B).
BLOCKED_CASES = {
    "batch_all_sorted_cosine_b24_d4_c6": RandomCase(
        348, 24, 4, 6, distance=COSINE, method="sorted"
    ),
    "batch_all_sorted_cosine_pk_b40_d3_p10_k4": RandomCase(
        349, 40, 3, 10, distance=COSINE, per_class=4, method="sorted"
    ),
    "batch_all_sorted_blocks_b40_d3_c8": RandomCase(
        350, 40, 3, 8, method="sorted", anchor_block=7
    ),
    "batch_all_soft_blocks_b13_d4_c3": RandomCase(
        351, 13, 4, 3, soft=True, method="dense", anchor_block=4
    ),
    "batch_all_soft_blocks_b12_d3_c3_cosine": RandomCase(
        352, 12, 3, 3, distance=COSINE, soft=True, method="dense", anchor_block=5
    ),
}

for _name, _table in [
    ("RANDOM_CASES", RANDOM_CASES),
    ("VARIANT_RANDOM_CASES", VARIANT_RANDOM_CASES),
    ("METHOD_CASES", METHOD_CASES),
    ("BLOCKED_CASES", BLOCKED_CASES),
]:
    register_table(_table, __name__, _name)
