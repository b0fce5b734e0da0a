"""The contract (`conformance/README.md`) restated in vectorized float64 NumPy, one
method per decision, so that each mutant of `mutants.py` overrides one method.

The decisions: which labels are equal, the distance and its gradient, which rows are
positives and negatives, which anchors count, which positive and negative are chosen,
the term, what counts as positive, the denominators and their guard, the gradient.
`test_mutants.py` checks that `Contract` passes every fixture (it is the float64
reference, `tftriplet_conformance.reference`, said again), then runs the mutants.
"""

from __future__ import annotations

import numpy as np

from tftriplet_conformance.variants import options_of, variant_of

#: The contract's guard in every denominator: `x / (n + 1e-12)` is 0, not NaN, for 0 / 0.
GUARD = 1e-12


class Contract:
    """The contract, vectorized in float64 NumPy; every mutant overrides one method."""

    killed_by = None

    def applies(self, loss):
        """Whether this implementation's mistake concerns `loss` (else it computes right)."""
        return True

    # --- inputs and distances ---------------------------------------------------------

    def labels(self, labels):
        return np.array(labels, dtype=np.int64)

    def embeddings(self, embeddings):
        return np.array(embeddings, dtype=np.float64)

    def distances(self, e, distance):
        if distance == "cosine":
            norms = np.linalg.norm(e, axis=1)
            unit = e / np.where(norms > 0, norms, 1.0)[:, None]
            d = 1.0 - unit @ unit.T
            zero = norms == 0
            d[zero, :] = d[:, zero] = 1.0
        else:
            diff = e[:, None, :] - e[None, :, :]
            d = np.einsum("ijk,ijk->ij", diff, diff)
            if distance == "euclidean":
                d = np.sqrt(d)
        np.fill_diagonal(d, 0.0)
        return d

    def distance_slopes(self, e, d, weights, distance):
        """`d loss / d e` from `weights[i, j] = d loss / d d(i, j) + d loss / d d(j, i)`."""
        if distance == "cosine":
            norms = np.linalg.norm(e, axis=1)
            live = norms > 0
            w = weights * np.outer(live, live)
            unit = e / np.where(live, norms, 1.0)[:, None]
            cos = 1.0 - d
            # d (1 - cos) / d e_i = -(u_j - cos u_i) / |e_i|
            pull = w @ unit - (w * cos).sum(axis=1)[:, None] * unit
            return -pull / np.where(live, norms, 1.0)[:, None]
        if distance == "euclidean":
            weights = np.divide(weights, d, out=np.zeros_like(d), where=d > 0)
        else:
            weights = 2.0 * weights
        return weights.sum(axis=1)[:, None] * e - weights @ e

    # --- who is who ---------------------------------------------------------------------

    def positives(self, labels):
        """`[i, j]`: j is a positive of anchor i (same label, another row)."""
        return (labels[:, None] == labels[None, :]) & ~np.eye(len(labels), dtype=bool)

    def negatives(self, labels):
        """`[i, k]`: k is a negative of anchor i (another label)."""
        return labels[:, None] != labels[None, :]

    def anchors(self, positives, negatives):
        """The anchors a mining strategy uses: those with a positive and a negative."""
        return np.flatnonzero(positives.any(axis=1) & negatives.any(axis=1))

    # --- the three strategies: (anchor, positive, negative) index arrays and counts -------

    def batch_all(self, labels, d, loss):
        valid = self.positives(labels)[:, :, None] & self.negatives(labels)[:, None, :]
        triples = np.nonzero(valid)
        return triples, {"num_valid": len(triples[0])}

    def batch_hard(self, labels, d, loss):
        positives, negatives = self.positives(labels), self.negatives(labels)
        anchors = self.anchors(positives, negatives)
        j = [self.hardest_positive(d[i], positives[i]) for i in anchors]
        k = [self.hardest_negative(d[i], negatives[i]) for i in anchors]
        return (anchors, np.array(j, int), np.array(k, int)), {"num_anchors": len(anchors)}

    def hardest_positive(self, row, mask):
        candidates = np.flatnonzero(mask)
        return candidates[np.argmax(row[candidates])]

    def hardest_negative(self, row, mask):
        candidates = np.flatnonzero(mask)
        return candidates[np.argmin(row[candidates])]

    def semi_hard(self, labels, d, loss):
        positives, negatives = self.positives(labels), self.negatives(labels)
        triples = [
            (i, j, self.semi_hard_negative(d[i], negatives[i], d[i, j], loss))
            for i in np.flatnonzero(negatives.any(axis=1))
            for j in self.pairs_of(i, positives)
        ]
        i, j, k = (np.array(column, int) for column in zip(*triples, strict=True)) if triples \
            else (np.zeros(0, int),) * 3
        return (i, j, k), {"num_pairs": len(i)}

    def pairs_of(self, i, positives):
        """The positives paired with anchor i: every one (pairs are ordered)."""
        return np.flatnonzero(positives[i])

    def semi_hard_negative(self, row, mask, d_ap, loss):
        farther = mask & self.farther(row, d_ap, loss)
        if farther.any():
            candidates = np.flatnonzero(farther)
            return candidates[np.argmin(row[candidates])]
        return self.fallback(row, mask)

    def farther(self, row, d_ap, loss):
        """Strictly farther than the positive: a negative at exactly `d_ap` is not."""
        return row > d_ap

    def fallback(self, row, mask):
        """No farther negative: the farthest one."""
        candidates = np.flatnonzero(mask)
        return candidates[np.argmax(row[candidates])]

    # --- terms, counts, denominators ------------------------------------------------------

    def term(self, x, loss):
        """`(value, slope)` of each chosen triple's term, `x = d(i,j) - d(i,k)`."""
        if loss["soft"]:
            return np.logaddexp(0.0, x), np.exp(-np.logaddexp(0.0, -x))
        hinge = x + loss["margin"]
        return np.maximum(hinge, 0.0), (hinge > 0).astype(np.float64)

    def positive(self, x, loss):
        """Which chosen triples count in `num_positive`: `x + margin > 0`, soft or not."""
        return x + loss["margin"] > 0

    def denominator(self, loss, counts):
        if loss["name"] == "batch_all":
            return counts["num_valid"] if loss["soft"] else counts["num_positive"]
        return counts["num_anchors" if loss["name"] == "batch_hard" else "num_pairs"]

    def divide(self, value, count):
        return value / (count + GUARD)

    def fraction_positive(self, counts, batch_size):
        return self.divide(counts["num_positive"], counts["num_valid"])

    def weights(self, coeff):
        """`d loss / d d(i, j)` of both orders: `d(i, j)` moves with `e_i` and with `e_j`."""
        return coeff + coeff.T

    def finish(self, gradient):
        return gradient

    # --- putting it together --------------------------------------------------------------

    def run(self, fixture):
        """The outputs of `fixture`, as an adapter returns them."""
        loss = options_of(fixture["loss"])
        labels = self.labels(fixture["inputs"]["labels"])
        e = self.embeddings(fixture["inputs"]["embeddings"])
        d = self.distances(e, loss["distance"])
        (i, j, k), counts = getattr(self, loss["name"])(labels, d, loss)
        x = d[i, j] - d[i, k]
        value, slope = self.term(x, loss)
        counts["num_positive"] = int(np.sum(self.positive(x, loss)))
        denominator = self.denominator(loss, counts)
        coeff = np.zeros_like(d)
        np.add.at(coeff, (i, j), slope)
        np.add.at(coeff, (i, k), -slope)
        coeff = self.divide(coeff, denominator)
        gradient = self.distance_slopes(e, d, self.weights(coeff), loss["distance"])
        outputs = {**counts, "loss": self.divide(float(np.sum(value)), denominator)}
        if loss["name"] == "batch_all":
            outputs["fraction_positive"] = self.fraction_positive(counts, len(labels))
        outputs = {key: outputs[key] for key in variant_of(fixture).outputs}
        return {**outputs, "gradient": self.finish(gradient).tolist()}


def killers(mutant, fixtures, dtype="float64"):
    """The names of the fixtures on which `mutant` fails, compared as the runner compares
    (`tftriplet_conformance.compare`) at the runner's tolerances of `dtype`."""
    from tftriplet_conformance.compare import compare

    return [
        fixture["name"]
        for fixture in fixtures
        if mutant.applies(options_of(fixture["loss"]))
        and not compare(fixture, mutant.run(fixture), "mutant", dtype).passed
    ]
