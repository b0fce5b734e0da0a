"""Deliberately wrong implementations of the contract: the mutants the fixtures must kill.

Each mutant is `contract_restated.Contract` with one method overridden by one plausible mistake,
named in its docstring; `killed_by` names the fixture that pins it, and `applies` limits
it to the variants the mistake concerns. `test_mutants.py` checks that every mutant fails
at least one fixture, that one included, at the runner's float64 tolerances.

Not mutants, because no output can tell them from the contract:

- which of several *equally* hard positives or negatives is chosen: the contract leaves
  it free (README, "The other variants"), and the fixtures keep such ties away from every
  decision that changes an output;
- semi-hard taking only negatives within the margin (`d_ap < d_an < d_ap + m`), else the
  farthest: where the closest farther negative lies beyond the margin its hinge is 0, and
  so is the farthest one's, so every output is the same.

    python tests/conformance/mutants.py   # every mutant and how many fixtures kill it
"""

from __future__ import annotations

import numpy as np
from contract_restated import Contract, killers

# --- the mutants: one mistake each --------------------------------------------------------


def _only(*names, soft=None):
    """`applies` for a mistake in the strategies `names` (and only soft, or only hinge)."""

    def applies(self, loss):
        return loss["name"] in names and (soft is None or loss["soft"] == soft)

    return applies


class LabelsWrappedToInt32(Contract):
    """Labels wrapped to int32: labels equal mod 2**32 merge."""

    killed_by = "labels_equal_mod_2pow32"

    def labels(self, labels):
        return super().labels(labels).astype(np.int32)


class LabelsThroughFloat32(Contract):
    """Labels compared as float32: 2**24 and 2**24 + 1 merge."""

    killed_by = "labels_2pow24_neighbours"

    def labels(self, labels):
        return super().labels(labels).astype(np.float32)


class LabelsThroughFloat64(Contract):
    """Labels compared as float64: labels beyond 2**53 merge with their neighbours."""

    killed_by = "int64_extreme_labels"

    def labels(self, labels):
        return super().labels(labels).astype(np.float64)


class ComputesInFloat32(Contract):
    """A float64 run computed in float32 inside."""

    killed_by = "seed_c_program"

    def embeddings(self, embeddings):
        return super().embeddings(embeddings).astype(np.float32)

    def distances(self, e, distance):
        return super().distances(e, distance).astype(np.float32).astype(np.float64)


class SquaredSwapped(Contract):
    """Euclidean and squared Euclidean swapped."""

    killed_by = "random_b5_d7_c3_squared"

    def distances(self, e, distance):
        swap = {"euclidean": "squared_euclidean", "squared_euclidean": "euclidean"}
        return super().distances(e, swap.get(distance, distance))

    def distance_slopes(self, e, d, weights, distance):
        swap = {"euclidean": "squared_euclidean", "squared_euclidean": "euclidean"}
        return super().distance_slopes(e, d, weights, swap.get(distance, distance))


class SquaredGradientWithoutTwo(Contract):
    """Squared Euclidean: the derivative of |a - b|^2 taken as (a - b), without the 2."""

    killed_by = "random_b5_d7_c3_squared"

    def distance_slopes(self, e, d, weights, distance):
        if distance == "squared_euclidean":
            weights = weights / 2.0
        return super().distance_slopes(e, d, weights, distance)


class SmoothedEuclidean(Contract):
    """Euclidean distance as sqrt(|a - b|^2 + 1e-12), a common guard for the gradient."""

    killed_by = "duplicate_embeddings"

    def distances(self, e, distance):
        d = super().distances(e, distance)
        if distance == "euclidean":
            d = np.sqrt(d**2 + 1e-12)
            np.fill_diagonal(d, 0.0)
        return d


class CosineNotNormalised(Contract):
    """Cosine distance without normalising the rows: 1 - e_i . e_j."""

    killed_by = "batch_all_cosine_b10_d5_c3"

    def distances(self, e, distance):
        if distance != "cosine":
            return super().distances(e, distance)
        d = 1.0 - e @ e.T
        np.fill_diagonal(d, 0.0)
        return d


class ZeroRowAtDistanceZero(Contract):
    """Cosine: a zero row at distance 0 from every row (its cosine taken as 1), not 1."""

    killed_by = "batch_all_cosine_zero_row"

    def distances(self, e, distance):
        d = super().distances(e, distance)
        if distance == "cosine":
            zero = ~e.any(axis=1)
            d[zero, :] = d[:, zero] = 0.0
        return d


class ZeroRowEpsNormalised(Contract):
    """Cosine: rows normalised by max(|e|, 1e-12), so a zero row's gradient is -u_j / eps."""

    killed_by = "batch_all_cosine_zero_row"

    def distance_slopes(self, e, d, weights, distance):
        if distance != "cosine":
            return super().distance_slopes(e, d, weights, distance)
        norms = np.maximum(np.linalg.norm(e, axis=1), 1e-12)
        unit = e / norms[:, None]
        cos = unit @ unit.T
        pull = weights @ unit - (weights * cos).sum(axis=1)[:, None] * unit
        return -pull / norms[:, None]


class KeepsSelfAsPositive(Contract):
    """i == j kept: every row is its own positive."""

    killed_by = "all_distinct_labels"

    def positives(self, labels):
        return labels[:, None] == labels[None, :]


class NegativesOfAnyLabel(Contract):
    """Negatives taken among every other row, the same label included."""

    killed_by = "seed_c_program"

    def negatives(self, labels):
        return ~np.eye(len(labels), dtype=bool)


class LastRowNeverAnAnchor(Contract):
    """Off by one: the loop over anchors stops before the last row."""

    killed_by = "seed_c_program"

    def positives(self, labels):
        positives = super().positives(labels)
        positives[-1, :] = False
        return positives


class FirstRowNeverANegative(Contract):
    """Off by one: the loop over negatives starts at row 1."""

    killed_by = "seed_c_program"

    def negatives(self, labels):
        negatives = super().negatives(labels)
        negatives[:, 0] = False
        return negatives


class HardestPositiveIsClosest(Contract):
    """Batch-hard: the hardest positive taken as the closest one (min, not max)."""

    killed_by = "batch_hard_b8_d4_c3"

    def hardest_positive(self, row, mask):
        candidates = np.flatnonzero(mask)
        return candidates[np.argmin(row[candidates])]


class HardestNegativeIsFarthest(Contract):
    """Batch-hard: the hardest negative taken as the farthest one (max, not min)."""

    killed_by = "batch_hard_b8_d4_c3"

    def hardest_negative(self, row, mask):
        candidates = np.flatnonzero(mask)
        return candidates[np.argmax(row[candidates])]


class BatchHardOverTheBatch(Contract):
    """Batch-hard: the mean over all B rows, not over the anchors used."""

    killed_by = "batch_hard_singletons_excluded"
    applies = _only("batch_hard")

    def denominator(self, loss, counts):
        return self._batch_size

    def labels(self, labels):
        labels = super().labels(labels)
        self._batch_size = len(labels)
        return labels


class SemiHardNotStrict(Contract):
    """Semi-hard: a negative at exactly the positive's distance taken as farther (>=)."""

    killed_by = "semi_hard_exact_tie_not_farther"

    def farther(self, row, d_ap, loss):
        return row >= d_ap


class SemiHardFarthestOfTheFarther(Contract):
    """Semi-hard: the farthest of the farther negatives, not the closest."""

    killed_by = "semi_hard_b8_d4_c3"

    def semi_hard_negative(self, row, mask, d_ap, loss):
        farther = mask & self.farther(row, d_ap, loss)
        return self.fallback(row, farther if farther.any() else mask)


class SemiHardFallbackIsClosest(Contract):
    """Semi-hard: no farther negative, and the closest (hardest) one is taken."""

    killed_by = "semi_hard_no_farther_negative"

    def fallback(self, row, mask):
        candidates = np.flatnonzero(mask)
        return candidates[np.argmin(row[candidates])]


class SemiHardDropsPairsWithoutFarther(Contract):
    """Semi-hard: a pair with no farther negative is dropped instead of taking the farthest."""

    killed_by = "semi_hard_no_farther_negative"

    def semi_hard(self, labels, d, loss):
        (i, j, k), _ = super().semi_hard(labels, d, loss)
        keep = d[i, k] > d[i, j]
        return (i[keep], j[keep], k[keep]), {"num_pairs": int(keep.sum())}


class SemiHardUnorderedPairs(Contract):
    """Semi-hard: each positive pair once (j > i), not in both orders."""

    killed_by = "semi_hard_b8_d4_c3"

    def pairs_of(self, i, positives):
        pairs = super().pairs_of(i, positives)
        return pairs[pairs > i]


class HingeNotClamped(Contract):
    """The hinge not clamped at 0: x + margin summed even where negative."""

    killed_by = "seed_c_program"
    applies = _only("batch_all", "batch_hard", "semi_hard", soft=False)

    def term(self, x, loss):
        return x + loss["margin"], np.ones_like(x)


class MarginIgnored(Contract):
    """The hinge without its margin: max(x, 0)."""

    killed_by = "seed_c_program"
    applies = _only("batch_all", "batch_hard", "semi_hard", soft=False)

    def term(self, x, loss):
        return super().term(x - loss["margin"], loss)


class SoftSumsOnlyPositiveTriples(Contract):
    """Soft margin summed only over the triples with x + margin > 0."""

    killed_by = "batch_all_soft_b8_d4_c3"
    applies = _only("batch_all", "batch_hard", soft=True)

    def term(self, x, loss):
        value, slope = super().term(x, loss)
        keep = self.positive(x, loss)
        return value * keep, slope * keep


class MarginInsideSoftplus(Contract):
    """Soft margin with the margin: softplus(x + margin), not softplus(x)."""

    killed_by = "batch_hard_soft_b10_d4_c3"

    def term(self, x, loss):
        return super().term(x + loss["margin"] if loss["soft"] else x, loss)


class NaiveSoftplus(Contract):
    """Soft margin as log(1 + exp(x)), which overflows to inf for large x."""

    killed_by = "batch_hard_soft_huge_x"

    def term(self, x, loss):
        if not loss["soft"]:
            return super().term(x, loss)
        with np.errstate(over="ignore", invalid="ignore"):
            return np.log1p(np.exp(x)), np.exp(x) / (1.0 + np.exp(x))


class BatchAllCountsHingeZero(Contract):
    """Batch-all: a triple with x + margin == 0 exactly counted positive (>= 0)."""

    killed_by = "exact_tie_hinge_zero"
    applies = _only("batch_all")

    def positive(self, x, loss):
        return x + loss["margin"] >= 0


class BatchHardCountsHingeZero(BatchAllCountsHingeZero):
    """Batch-hard: an anchor with x + margin == 0 exactly counted positive (>= 0)."""

    killed_by = "batch_hard_exact_tie_hinge_zero"
    applies = _only("batch_hard")


class SemiHardCountsHingeZero(BatchAllCountsHingeZero):
    """Semi-hard: a pair with x + margin == 0 exactly counted positive (>= 0)."""

    killed_by = "semi_hard_exact_tie_hinge_zero"
    applies = _only("semi_hard")


class SoftBatchHardCountsEveryAnchor(Contract):
    """Soft batch-hard: every anchor counted positive (softplus is never 0)."""

    killed_by = "batch_hard_soft_num_positive"
    applies = _only("batch_hard", soft=True)

    def positive(self, x, loss):
        return np.ones_like(x, dtype=bool)


class SoftBatchAllCountsEveryTriple(SoftBatchHardCountsEveryAnchor):
    """Soft batch-all: every valid triple counted positive (softplus is never 0)."""

    killed_by = "batch_all_soft_b8_d4_c3"
    applies = _only("batch_all", soft=True)


class SoftBatchHardCountsWithoutMargin(Contract):
    """Soft batch-hard: num_positive counts x > 0, ignoring the margin."""

    killed_by = "batch_hard_soft_num_positive"
    applies = _only("batch_hard", soft=True)

    def positive(self, x, loss):
        return x > 0


class SoftBatchAllCountsWithoutMargin(SoftBatchHardCountsWithoutMargin):
    """Soft batch-all: num_positive counts x > 0, ignoring the margin."""

    killed_by = "batch_all_soft_b8_d4_c3"
    applies = _only("batch_all", soft=True)


class BatchAllDividesByValid(Contract):
    """Batch-all hinge: the sum divided by the valid triples, not the positive ones."""

    killed_by = "seed_c_program"
    applies = _only("batch_all", soft=False)

    def denominator(self, loss, counts):
        return counts["num_valid"]


class SoftBatchAllDividesByPositive(Contract):
    """Soft batch-all: the sum divided by the positive triples, not the valid ones."""

    killed_by = "batch_all_soft_b8_d4_c3"
    applies = _only("batch_all", soft=True)

    def denominator(self, loss, counts):
        return counts["num_positive"]


class NoGuard(Contract):
    """Denominators without the guard: 0 / 0 is NaN, not 0."""

    killed_by = "batch_size_1"

    def divide(self, value, count):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.float64(value) / np.float64(count)


class GuardPlusOne(Contract):
    """Denominators guarded by + 1 instead of + 1e-12."""

    killed_by = "seed_c_program"

    def divide(self, value, count):
        return value / (count + 1.0)


class FractionOverAllTriples(Contract):
    """fraction_positive over all B^3 index triples, not the valid ones."""

    killed_by = "seed_c_program"

    def fraction_positive(self, counts, batch_size):
        return self.divide(counts["num_positive"], batch_size**3)


class GradientTwiceTooLarge(Contract):
    """Scaled gradient: twice the derivative."""

    killed_by = "seed_c_program"

    def finish(self, gradient):
        return 2.0 * gradient


class GradientSignFlipped(Contract):
    """The gradient's sign flipped (the ascent direction)."""

    killed_by = "seed_c_program"

    def finish(self, gradient):
        return -gradient


class GradientThroughOneEndOnly(Contract):
    """The gradient of d(i, j) taken through e_i only, as if e_j were a constant."""

    killed_by = "seed_c_program"

    def weights(self, coeff):
        return coeff


#: Every mutant, in the order above.
MUTANTS = [
    cls
    for cls in list(globals().values())
    if isinstance(cls, type) and issubclass(cls, Contract) and cls is not Contract
    and cls.__module__ == __name__
]


if __name__ == "__main__":
    from tftriplet_conformance.fixtures import load_fixtures

    fixtures = load_fixtures()
    for cls in MUTANTS:
        found = killers(cls(), fixtures)
        print(f"{cls.__name__}: {cls.__doc__.splitlines()[0]}")
        print(f"    killed by {len(found)} fixtures, pinned by {cls.killed_by}")
