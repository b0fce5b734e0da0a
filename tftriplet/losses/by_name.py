"""Any strategy by its name: one entry point for code that picks the strategy at run time."""

from __future__ import annotations

from tftriplet.distances import resolve_distance
from tftriplet.losses.batch_all import batch_all_triplet_statistics
from tftriplet.losses.batch_hard import batch_hard_triplet_statistics
from tftriplet.losses.semi_hard import semi_hard_triplet_statistics

#: The strategy names.
STRATEGIES = ("batch_all", "batch_hard", "semi_hard")


def triplet_statistics(
    labels,
    embeddings,
    strategy="batch_all",
    margin=0.2,
    distance=None,
    soft=False,
    method="auto",
    *,
    squared=False,
    anchor_block=None,
):
    """The statistics of `strategy`: a dict with `loss` and the strategy's counts.

    Args:
        labels: integer class ids, shape `(B,)` or `(B, 1)`.
        embeddings: float tensor `(B, D)`.
        strategy: `"batch_all"`, `"batch_hard"` or `"semi_hard"`.
        margin: the margin `m`.
        distance: `"euclidean"` (default), `"squared_euclidean"` or `"cosine"`.
        soft: the soft margin (batch-all and batch-hard only).
        method: how batch-all is evaluated, `"auto"`, `"dense"` or `"sorted"`; the
            other strategies have one method and accept only `"auto"`.
        squared: shorthand for `distance="squared_euclidean"`.
        anchor_block: batch-all's anchors per block, or None (the other strategies have
            no blocks and accept only None).

    Returns:
        The dict of `tftriplet.batch_all_triplet_statistics`,
        `tftriplet.batch_hard_triplet_statistics` or
        `tftriplet.semi_hard_triplet_statistics`.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got {strategy!r}.")
    distance = resolve_distance(distance, squared)
    if strategy == "batch_all":
        return batch_all_triplet_statistics(
            labels, embeddings, margin, distance=distance, soft=soft, method=method,
            anchor_block=anchor_block,
        )
    for option, value, default in (("method", method, "auto"),
                                   ("anchor_block", anchor_block, None)):
        if value != default:
            raise ValueError(
                f"{option}={value!r} selects how batch_all is evaluated; {strategy} has one "
                f"method. Pass {option}={default!r}."
            )
    if strategy == "batch_hard":
        return batch_hard_triplet_statistics(
            labels, embeddings, margin, distance=distance, soft=soft
        )
    if soft:
        raise ValueError("semi_hard has no soft-margin form; got soft=True.")
    return semi_hard_triplet_statistics(labels, embeddings, margin, distance=distance)


def triplet_loss(
    labels,
    embeddings,
    strategy="batch_all",
    margin=0.2,
    distance=None,
    soft=False,
    method="auto",
    *,
    squared=False,
    anchor_block=None,
):
    """The triplet loss of `strategy`, chosen by name.

    `triplet_loss(labels, embeddings, strategy="batch_hard", soft=True)` equals
    `batch_hard_triplet_loss(labels, embeddings, soft=True)`; every option is passed on
    (see `triplet_statistics` for the arguments).

    Returns:
        The scalar loss.

    Example:
        ```python
        loss = triplet_loss([0, 0, 1, 1], [[0.0], [0.5], [1.0], [2.0]],
                            strategy="semi_hard", margin=0.3)
        ```
    """
    return triplet_statistics(
        labels, embeddings, strategy, margin, distance, soft, method, squared=squared,
        anchor_block=anchor_block,
    )["loss"]
