"""sentence-transformers' batch triplet losses as a peer backend.

`BatchAllTripletLoss`, `BatchHardTripletLoss`, `BatchHardSoftMarginTripletLoss` and
`BatchSemiHardTripletLoss` take a model and call it on the batch's features; here the
model is a small `torch.nn.Module` that returns the fixture's embeddings as its
`sentence_embedding` (no pretrained model is loaded, nothing is downloaded). The loss is
called as in training, `loss([features], labels)`, and differentiated by autograd.

Distances: `BatchHardTripletLossDistanceFunction.euclidean_distance` (the default),
the same with `squared=True` for `squared_euclidean`, and `cosine_distance`. There is
one configuration (mode `matched`): the margin is the fixture's (the losses' default is 5).
The soft-margin batch-all loss has no sentence-transformers counterpart (`n/a`).
"""

from __future__ import annotations

import functools

from tftriplet_conformance.adapters.torch_peer import TorchPeerAdapter
from tftriplet_conformance.differs import (
    Difference,
    anchor_without_positive_or_negative,
    has_zero_row,
    hinge_exactly_zero,
    positive_pair_without_negative,
)

NAME = "sentence-transformers"

DIFFERENCES = (
    Difference(
        NAME,
        "cosine_distance normalises rows (util.cos_sim, torch.nn.functional.normalize with "
        "eps=1e-12), whose gradient at a zero row is the upstream gradient / 1e-12, not 0",
        loss={"distance": "cosine"},
        when=has_zero_row,
    ),
    Difference(
        NAME,
        "BatchAllTripletLoss clips with triplet_loss[triplet_loss < 0] = 0, so a hinge of "
        "exactly 0 keeps its slope 1 in the gradient; the contract takes the subgradient 0",
        loss={"name": "batch_all"},
        when=hinge_exactly_zero,
    ),
    Difference(
        NAME,
        "BatchHardTripletLoss clips with tl[tl < 0] = 0, so a hinge of exactly 0 keeps its "
        "slope 1 in the gradient; the contract takes the subgradient 0",
        loss={"name": "batch_hard", "soft": False},
        when=hinge_exactly_zero,
    ),
    Difference(
        NAME,
        "BatchSemiHardTripletLoss clips with torch.max(loss, 0), whose gradient at a hinge "
        "of exactly 0 is split, slope 1/2; the contract takes the subgradient 0",
        loss={"name": "semi_hard"},
        when=hinge_exactly_zero,
    ),
    Difference(
        NAME,
        "BatchHard(SoftMargin)TripletLoss averages over every row of the batch: a row "
        "without a positive or a negative still adds a term (hardest positive distance 0, "
        "or the row's own largest distance as its negative); the contract averages over "
        "the anchors that have both",
        loss={"name": "batch_hard"},
        when=anchor_without_positive_or_negative,
    ),
    Difference(
        NAME,
        "BatchSemiHardTripletLoss keeps positive pairs whose anchor has no negative (the "
        "'negative' is then the row's smallest distance, its own 0) and divides by every "
        "positive pair; the contract leaves out pairs without a negative",
        loss={"name": "semi_hard"},
        when=positive_pair_without_negative,
    ),
)


def _embedder():
    """A model whose output is its input: `{"sentence_embedding": features["embedding"]}`."""
    import torch

    class FixedEmbeddings(torch.nn.Module):
        def forward(self, features):
            return {"sentence_embedding": features["embedding"]}

    return FixedEmbeddings()


class SentenceTransformersAdapter(TorchPeerAdapter):
    name = NAME
    package = "sentence-transformers"
    module = "sentence_transformers"
    differences = DIFFERENCES

    def unsupported_reason(self, loss):
        return "sentence-transformers has no soft-margin batch-all loss"

    def configurations(self, loss):
        from tftriplet_conformance.variants import options_of

        options = options_of(loss)
        name, soft = options["name"], options["soft"]
        if name == "batch_all" and soft:
            return {}

        def fn(labels, embeddings):
            from sentence_transformers.sentence_transformer import losses
            from sentence_transformers.sentence_transformer.losses import (
                BatchHardTripletLossDistanceFunction as Distances,
            )

            distance = {
                "euclidean": Distances.euclidean_distance,
                "squared_euclidean": functools.partial(
                    Distances.euclidean_distance, squared=True
                ),
                "cosine": Distances.cosine_distance,
            }[options["distance"]]
            model, margin = _embedder(), options["margin"]
            if name == "batch_all":
                loss_fn = losses.BatchAllTripletLoss(model, distance, margin=margin)
            elif name == "batch_hard" and soft:
                loss_fn = losses.BatchHardSoftMarginTripletLoss(model, distance)
            elif name == "batch_hard":
                loss_fn = losses.BatchHardTripletLoss(model, distance, margin=margin)
            else:
                loss_fn = losses.BatchSemiHardTripletLoss(model, distance, margin=margin)
            return loss_fn([{"embedding": embeddings}], labels), {}

        return {"matched": fn}
