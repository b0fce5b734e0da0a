"""Input checking shared by every loss and metric.

Triplet losses fail silently on the wrong input more often than loudly: one-hot labels
broadcast into nonsense, float32 labels merge ids above 2**24, and a batch-size mismatch can
broadcast. Every loss and metric goes through `standardize_inputs` first; everything that
takes class ids as NumPy arrays (the samplers, the retrieval metrics and their callback, the
demo) goes through `check_class_ids`.
"""

from __future__ import annotations

import numpy as np
from keras import backend, ops

_INTEGER_DTYPES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
_FLOAT_DTYPES = {"float16", "bfloat16", "float32", "float64"}
_ONE_HOT = (
    "One-hot or multi-column labels are not class ids: convert one-hot labels with "
    "argmax(axis=-1) first."
)


def _dtype_name(x):
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return None
    try:
        return backend.standardize_dtype(dtype)
    except ValueError:
        return str(dtype)


def _as_tensor_keeping_dtype(x, what):
    """Convert to a backend tensor without ever passing integers through a float."""
    if not ops.is_tensor(x):
        array = np.asarray(x)
        if array.dtype.kind not in "iuf":
            raise TypeError(
                f"{what} must be numeric (integer class ids, or floats holding integers); "
                f"got an array of dtype {array.dtype}."
            )
        x = array
    try:
        tensor = ops.convert_to_tensor(x)
    except (TypeError, ValueError) as err:  # e.g. string tensors on some backends
        raise TypeError(f"{what} must be a numeric tensor; got {x!r} ({err}).") from err
    if isinstance(x, np.ndarray) and x.dtype.kind in "iu" and x.size:
        _check_integers_survived(x, tensor, what)
    return tensor


def _check_integers_survived(array, tensor, what):
    """Refuse integer ids that the backend narrowed (JAX without x64 makes int64 int32)."""
    dtype = _dtype_name(tensor)
    if dtype not in _INTEGER_DTYPES or np.dtype(dtype).itemsize >= array.dtype.itemsize:
        return
    info = np.iinfo(dtype)
    low, high = array.min(), array.max()
    if low < info.min or high > info.max:
        raise ValueError(
            f"{what} holds integers in [{low}, {high}], outside the range of {dtype}, the "
            f"dtype this backend ({backend.backend()}) converts {array.dtype} to; they would "
            "wrap and merge classes. Enable 64-bit integers (JAX: "
            "jax.config.update('jax_enable_x64', True)) or remap the ids to 0..C-1."
        )


def compute_dtype_for(embeddings_dtype):
    """Losses are computed in float32 at least: float16/bfloat16 inputs are upcast."""
    return "float64" if embeddings_dtype == "float64" else "float32"


def standardize_inputs(labels, embeddings):
    """Check and normalise `labels` and `embeddings` for a triplet loss.

    Args:
        labels: integer class ids of shape `(B,)` or `(B, 1)`; floats holding integers are
            accepted and compared as they are (never cast).
        embeddings: shape `(B, D)`, any float dtype (integers are converted to float32).

    Returns:
        `(labels, embeddings)`: labels of shape `(B,)` in their own dtype, embeddings
            of shape `(B, D)` in float32 (float64 stays float64).

    Raises:
        ValueError: on a rank or shape that is not the expected one, naming both.
        TypeError: on non-numeric labels or embeddings.
    """
    embeddings = _as_tensor_keeping_dtype(embeddings, "embeddings (y_pred)")
    labels = _as_tensor_keeping_dtype(labels, "labels (y_true)")

    emb_shape = tuple(embeddings.shape)
    if len(emb_shape) != 2:
        raise ValueError(
            "embeddings (y_pred) must have rank 2, shape (batch_size, embedding_dim); "
            f"got shape {emb_shape}."
        )
    emb_dtype = _dtype_name(embeddings)
    if emb_dtype not in _FLOAT_DTYPES and emb_dtype not in _INTEGER_DTYPES:
        raise TypeError(f"embeddings (y_pred) must be numeric; got dtype {emb_dtype}.")
    embeddings = ops.cast(embeddings, compute_dtype_for(emb_dtype))

    label_dtype = _dtype_name(labels)
    if label_dtype not in _INTEGER_DTYPES and label_dtype not in _FLOAT_DTYPES:
        raise TypeError(
            "labels (y_true) must be integer class ids (or floats holding integers); "
            f"got dtype {label_dtype}."
        )
    label_shape = tuple(labels.shape)
    if len(label_shape) == 2 and label_shape[1] == 1:
        labels = ops.reshape(labels, (-1,))
    elif len(label_shape) == 2:
        raise ValueError(
            "labels (y_true) must be integer class ids of shape (batch_size,) or "
            f"(batch_size, 1); got shape {label_shape}. {_ONE_HOT}"
        )
    elif len(label_shape) != 1:
        raise ValueError(
            "labels (y_true) must have shape (batch_size,) or (batch_size, 1); "
            f"got shape {label_shape}."
        )
    b_labels, b_emb = labels.shape[0], emb_shape[0]
    if b_labels is not None and b_emb is not None and b_labels != b_emb:
        raise ValueError(
            f"labels (y_true) and embeddings (y_pred) must have the same batch size; got "
            f"labels of shape {label_shape} and embeddings of shape {emb_shape} "
            f"(expected labels of shape ({b_emb},) or ({b_emb}, 1))."
        )
    return labels, embeddings


def check_class_ids(labels, what="labels", num_rows=None, *, rows="the data", int32=False):
    """Check class ids given as an array (NumPy side); return them as a 1-D NumPy array.

    What the samplers, the retrieval metrics, `RetrievalEvaluation` and the demo require of
    class ids: shape `(N,)` or `(N, 1)` (a column is flattened), an integer dtype (floats,
    booleans and strings are refused, never cast), and, when `num_rows` is given, one id
    per row of the data they label.

    Args:
        labels: the class ids, anything `numpy.asarray` takes.
        what: the name of `labels` in the error messages, e.g. `"y"`.
        num_rows: the number of rows `N` of the data the ids label; `None` skips the check.
        rows: the name of that data in the error messages, e.g. `"x"`.
        int32: also refuse ids outside the int32 range (for callers that yield int32
            batches, where such ids would wrap and merge classes).

    Returns:
        The ids, shape `(N,)`, in their own integer dtype.

    Raises:
        ValueError: on a shape other than `(N,)` or `(N, 1)` (one-hot labels among them),
            a row count other than `num_rows`, or, with `int32`, ids beyond int32.
        TypeError: on ids that are not integers.

    Example:
        ```pycon
        >>> check_class_ids([[3], [1], [3]], "y", num_rows=3)
        array([3, 1, 3])
        ```
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        hint = f" {_ONE_HOT}" if labels.ndim == 2 else ""
        raise ValueError(
            f"{what} must be class ids in a 1-D array (N,) or a column (N, 1); got shape "
            f"{labels.shape}.{hint}"
        )
    if labels.dtype.kind not in "iu":
        hint = ""
        if labels.dtype.kind == "f":
            hint = " Floats that hold whole numbers can be converted with astype(int)."
        raise TypeError(f"{what} must hold integer class ids; got dtype {labels.dtype}.{hint}")
    if num_rows is not None and labels.shape[0] != num_rows:
        raise ValueError(
            f"{rows} and {what} must have one row per label: {rows} has N={num_rows} rows, so "
            f"{what} must have shape (N,) or (N, 1); got shape {labels.shape}."
        )
    if int32 and labels.size:
        low, high = labels.min(), labels.max()
        if low < np.iinfo(np.int32).min or high > np.iinfo(np.int32).max:
            raise ValueError(
                f"{what} must be class ids that fit in int32 (they are handed on as int32); "
                f"got ids in [{low}, {high}], which would wrap and merge classes. Remap them to "
                "0..C-1, e.g. with numpy.unique(ids, return_inverse=True)."
            )
    return labels
