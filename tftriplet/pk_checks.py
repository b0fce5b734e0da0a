"""What the two P x K samplers share: their argument checks, and the record of a sampler
that a backup keeps so that a restart with another sampler is refused."""

from __future__ import annotations

import hashlib

import numpy as np

from tftriplet.inputs import check_class_ids


def check_pk(x, y, classes_per_batch, samples_per_class):
    """Check `(x, y, P, K)`; return `x`, `y` as arrays and the sorted classes."""
    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"x must be an array (N, ...) with one row per label; got a scalar {x}.")
    # The batches hold the ids as int32: wider ids would wrap and merge classes.
    y = check_class_ids(y, "y", num_rows=x.shape[0], rows="x", int32=True)
    classes = np.unique(y)
    if not 2 <= classes_per_batch <= len(classes):
        raise ValueError(
            f"classes_per_batch (P) must be in 2..{len(classes)} (the number of classes "
            f"in y); got {classes_per_batch}."
        )
    if samples_per_class < 2:
        raise ValueError(
            f"samples_per_class (K) must be >= 2 so that anchors have positives; got "
            f"{samples_per_class}."
        )
    return x, y, classes


def _digest(*arrays):
    """A hash of the arrays' contents, shapes and dtypes (strings and objects by value)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(f"{a.shape}{a.dtype.str}".encode())
        if a.dtype.kind == "O":
            for item in a.reshape(-1):
                h.update(repr(item).encode())
        else:
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def sampler_config(kind, x, y, classes, p, k, batches_per_epoch, seed):
    """What a backup records of a sampler, to refuse a restart with another one."""
    return {
        "sampler": kind,
        "classes_per_batch": int(p),
        "samples_per_class": int(k),
        "batches_per_epoch": batches_per_epoch,
        "seed": int(seed),
        "num_samples": int(y.shape[0]),
        "num_classes": len(classes),
        "data_digest": _digest(x, y),
    }


NOT_THIS_SAMPLER = (
    "the batches fit trained on did not come from the sampler given to "
    "tftriplet.BackupAndRestore: pass fit the same PKBatches, or the dataset pk_dataset "
    "returned (transformed or not)."
)
