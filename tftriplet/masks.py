"""Masks of valid pairs and triples, from integer labels of shape `(B,)`."""

from __future__ import annotations

from keras import ops

from tftriplet.backend_ops import gpu_comparable


def same_label_mask(labels):
    """`mask[i, j]`: label i == label j (the diagonal included)."""
    labels = gpu_comparable(ops.reshape(ops.convert_to_tensor(labels), (-1,)))
    return ops.equal(ops.expand_dims(labels, 0), ops.expand_dims(labels, 1))


def off_diagonal_mask(batch_size):
    """`mask[i, j]`: i != j, from one comparison of indices (no float eye and casts)."""
    index = gpu_comparable(ops.arange(batch_size, dtype="int32"))
    return ops.not_equal(ops.expand_dims(index, 1), ops.expand_dims(index, 0))


def anchor_positive_mask(labels):
    """`mask[i, j]`: `j` is a positive of anchor `i` (`i != j`, same label).

    Args:
        labels: class ids of shape `(B,)`.

    Returns:
        A boolean `(B, B)` tensor.

    Example:
        ```python
        mask = anchor_positive_mask([0, 0, 1])   # True at (0, 1) and (1, 0)
        ```
    """
    same = same_label_mask(labels)
    return ops.logical_and(same, off_diagonal_mask(ops.shape(same)[0]))


def anchor_negative_mask(labels):
    """`mask[i, k]`: `k` is a negative of anchor `i` (another label, so `i != k`).

    Args:
        labels: class ids of shape `(B,)`.

    Returns:
        A boolean `(B, B)` tensor.

    Example:
        ```python
        mask = anchor_negative_mask([0, 0, 1])   # True at (0, 2), (1, 2), (2, 0), (2, 1)
        ```
    """
    return ops.logical_not(same_label_mask(labels))


def triplet_mask(labels):
    """`mask[i, j, k]` is True iff (i, j, k) is a valid triple.

    Valid means: i, j, k distinct, `labels[i] == labels[j]` and `labels[i] != labels[k]`
    (FaceNet's batch-all triples). Distinctness of k from i and j follows from
    the labels, so it needs no index test. Labels are compared in their own dtype (int32
    widened to int64 under TensorFlow, `tftriplet.backend_ops.gpu_comparable`).

    Args:
        labels: class ids of shape `(B,)`, any integer dtype.

    Returns:
        A boolean `(B, B, B)` tensor.

    Example:
        ```python
        mask = triplet_mask([0, 0, 1])   # True at (0, 1, 2) and (1, 0, 2) only
        ```

    Reference:
        Schroff et al., "FaceNet", CVPR 2015, https://arxiv.org/abs/1503.03832
    """
    positive, negative = anchor_masks(labels)
    return ops.logical_and(ops.expand_dims(positive, 2), ops.expand_dims(negative, 1))


def anchor_masks(labels):
    """`(anchor_positive_mask(labels), anchor_negative_mask(labels))` from one comparison
    of the labels: boolean `(B, B)` tensors."""
    same = same_label_mask(labels)
    return ops.logical_and(same, off_diagonal_mask(ops.shape(same)[0])), ops.logical_not(same)


def anchor_pair_masks(labels, anchor_index):
    """Rows `anchor_index` of the anchor-positive and anchor-negative masks.

    `positive[a, j]` is True iff `j` is a positive of anchor `anchor_index[a]` (same
    label, another sample) and `negative[a, k]` iff `k` is one of its negatives; a
    valid triple `(anchor_index[a], j, k)` is `positive[a, j] and negative[a, k]`. Used
    to mine a subset of anchors (one replica's) against a batch.

    Args:
        labels: class ids of shape `(B,)`.
        anchor_index: int32 indices `(A,)` into `labels`.

    Returns:
        `(positive, negative)`, boolean `(A, B)` tensors.
    """
    same, not_self = anchor_row_masks(labels, anchor_index)
    return ops.logical_and(same, not_self), ops.logical_not(same)


def anchor_row_masks(labels, anchor_index, anchor_labels=None):
    """`(same, not_self)`, the rows `anchor_index` of the label and index masks.

    `same[a, j]`: sample `j` has the label of anchor `anchor_index[a]` (itself
    included); `not_self[a, j]`: `j` is another sample than that anchor.

    Args:
        labels: class ids of shape `(B,)`.
        anchor_index: int32 indices `(A,)` into `labels`.
        anchor_labels: `labels[anchor_index]`, where already gathered.

    Returns:
        `(same, not_self)`, boolean `(A, B)` tensors.
    """
    labels = ops.reshape(ops.convert_to_tensor(labels), (-1,))
    anchor_index = ops.convert_to_tensor(anchor_index, "int32")
    if anchor_labels is None:
        anchor_labels = ops.take(labels, anchor_index)
    same = ops.equal(
        ops.expand_dims(gpu_comparable(anchor_labels), 1),
        ops.expand_dims(gpu_comparable(labels), 0),
    )
    columns = gpu_comparable(ops.arange(ops.shape(labels)[0], dtype="int32"))
    not_self = ops.not_equal(
        ops.expand_dims(gpu_comparable(anchor_index), 1), ops.expand_dims(columns, 0)
    )
    return same, not_self
