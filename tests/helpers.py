"""Parametrization tables shared by the test folders (the helper functions are fixtures in
conftest.py)."""

import itertools

#: (strategy, soft) pairs that exist: semi-hard has no soft form.
VARIANTS = [
    ("batch_all", False),
    ("batch_all", True),
    ("batch_hard", False),
    ("batch_hard", True),
    ("semi_hard", False),
]
DISTANCES = ("euclidean", "squared_euclidean", "cosine")
ALL_CASES = [(n, s, d) for (n, s), d in itertools.product(VARIANTS, DISTANCES)]


def case_id(case):
    name, soft, distance = case
    return f"{name}-{'soft' if soft else 'hinge'}-{distance}"
