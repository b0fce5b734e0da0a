"""pytorch-metric-learning's `TripletMarginLoss` as a peer backend.

Each fixture runs in two configurations (the adapter's modes):

- `matched`: the configuration whose definition is the fixture's. Distances
  `LpDistance(normalize_embeddings=False, p=2, power=1)` (`power=2` for
  `squared_euclidean`) or `CosineSimilarity()` (its margin is taken on similarities,
  `s_an - s_ap + m`, the same number as `d_ap - d_an + m` for `d = 1 - s`).
  Batch-all hinge: every triple (no miner) with `AvgNonZeroReducer` (the sum over positive
  hinges divided by their number; `num_positive` is the reducer's `num_past_filter`).
  Batch-hard: `BatchHardMiner` with `MeanReducer` (the mean over the mined anchors;
  `num_anchors` is the number of mined triplets). Soft margin: `smooth_loss=True` with
  `margin=0` (`softplus(d_ap - d_an + margin)`, so the margin must be 0) and
  `MeanReducer` (the mean over every triple or anchor, which `AvgNonZeroReducer` would
  not give where the softplus underflows to 0). Semi-hard has no such configuration: mode
  `closest` runs `TripletMarginMiner(type_of_triplets="semihard")` instead, declared
  different.
- `defaults`: what a user gets by only setting the margin, `TripletMarginLoss(margin=m)`
  (with `BatchHardMiner()` for batch-hard): Euclidean distance between L2-normalised
  embeddings, `AvgNonZeroReducer`. Run for Euclidean fixtures, declared different.
"""

from __future__ import annotations

from tftriplet_conformance.adapters.torch_peer import TorchPeerAdapter
from tftriplet_conformance.differs import Difference, has_valid_triple, has_zero_row


def normalising_changes_the_result(fixture):
    """The reference's loss or gradient changes when every row is L2-normalised first.

    (Not so for a batch whose hinges are all inactive either way, or whose rows are all
    equal.) The rows are divided by `max(|row|, 1e-12)` as `torch.nn.functional.normalize`
    does; results are compared to 1e-9 relative.
    """
    import numpy as np

    from tftriplet_conformance.variants import variant_of

    labels = np.array(fixture["inputs"]["labels"], dtype=np.int64)
    raw = np.asarray(fixture["inputs"]["embeddings"], dtype=np.float64)
    norms = np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)
    reference = variant_of(fixture).reference
    a = reference(labels, raw, fixture["loss"])
    b = reference(labels, raw / norms, fixture["loss"])
    same_loss = np.isclose(a["loss"], b["loss"], rtol=1e-9, atol=1e-12)
    same_gradient = np.allclose(a["gradient"], b["gradient"], rtol=1e-9, atol=1e-12)
    return not (same_loss and same_gradient)


NAME = "pytorch-metric-learning"

DIFFERENCES = (
    Difference(
        NAME,
        "smooth_loss=True is softplus(d_ap - d_an + margin) averaged over the non-zero terms; "
        "the contract's soft margin is softplus(d_ap - d_an), without the margin (and the "
        "default LpDistance normalises the embeddings)",
        loss={"soft": True},
        mode="defaults",
        when=has_valid_triple,
    ),
    Difference(
        NAME,
        "TripletMarginMiner('semihard') keeps every negative with d_ap < d_an < d_ap + m and "
        "averages over them; the contract takes one negative per positive pair (the closest "
        "farther one, else the farthest) and averages over pairs",
        loss={"name": "semi_hard"},
        when=has_valid_triple,
    ),
    Difference(
        NAME,
        "the default LpDistance L2-normalises the embeddings before taking distances "
        "(normalize_embeddings=True); the contract's distances are on the raw embeddings",
        mode="defaults",
        when=normalising_changes_the_result,
    ),
    Difference(
        NAME,
        "CosineSimilarity L2-normalises rows with torch.nn.functional.normalize, whose "
        "gradient at a zero row is the upstream gradient divided by eps=1e-12, not 0",
        loss={"distance": "cosine"},
        mode="matched",
        when=has_zero_row,
    ),
)


class PyTorchMetricLearningAdapter(TorchPeerAdapter):
    name = NAME
    package = "pytorch-metric-learning"
    module = "pytorch_metric_learning"
    differences = DIFFERENCES

    def configurations(self, loss):
        from tftriplet_conformance.variants import options_of

        options = options_of(loss)
        # semi-hard has no matching configuration: the closest one runs, declared different
        closest = "closest" if options["name"] == "semi_hard" else "matched"
        configs = {closest: self._matched(options)}
        if options["distance"] == "euclidean":
            configs["defaults"] = self._defaults(options)
        return configs

    @staticmethod
    def _distance(distance):
        from pytorch_metric_learning import distances

        if distance == "cosine":
            return distances.CosineSimilarity()
        power = 2 if distance == "squared_euclidean" else 1
        return distances.LpDistance(normalize_embeddings=False, p=2, power=power)

    def _matched(self, options):
        from pytorch_metric_learning import losses, miners, reducers

        name, soft, margin = options["name"], options["soft"], options["margin"]
        distance = self._distance(options["distance"])

        def fn(labels, embeddings):
            counts = {}
            if name == "batch_all" and not soft:
                reducer = reducers.AvgNonZeroReducer(collect_stats=True)
                loss_fn = losses.TripletMarginLoss(
                    margin=margin, distance=distance, reducer=reducer
                )
                value = loss_fn(embeddings, labels)
                # the loss holds a copy of the reducer; it records the count it averaged over
                if hasattr(loss_fn.reducer, "num_past_filter"):
                    counts["num_positive"] = int(loss_fn.reducer.num_past_filter)
                return value, counts
            reducer = reducers.MeanReducer()
            loss_fn = losses.TripletMarginLoss(
                margin=0.0 if soft else margin,
                smooth_loss=soft,
                distance=distance,
                reducer=reducer if name != "semi_hard" else reducers.AvgNonZeroReducer(),
            )
            if name == "batch_all":
                return loss_fn(embeddings, labels), counts
            if name == "batch_hard":
                miner = miners.BatchHardMiner(distance=distance)
            else:
                miner = miners.TripletMarginMiner(
                    margin=margin, type_of_triplets="semihard", distance=distance
                )
            triplets = miner(embeddings, labels)
            if name == "batch_hard":
                counts["num_anchors"] = len(triplets[0])
            return loss_fn(embeddings, labels, triplets), counts

        return fn

    def _defaults(self, options):
        from pytorch_metric_learning import losses, miners

        name, soft, margin = options["name"], options["soft"], options["margin"]

        def fn(labels, embeddings):
            loss_fn = losses.TripletMarginLoss(margin=margin, smooth_loss=soft)
            if name == "batch_all":
                return loss_fn(embeddings, labels), {}
            if name == "batch_hard":
                miner = miners.BatchHardMiner()
            else:
                miner = miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard")
            return loss_fn(embeddings, labels, miner(embeddings, labels)), {}

        return fn
