"""The demo's data: scikit-learn's bundled digits, or the user's `.npz`, checked."""

from __future__ import annotations

import os

import numpy as np

from tftriplet.inputs import check_class_ids
from tftriplet_cli.demo.options import DemoError

DIGITS = "scikit-learn digits (1797 8x8 images, 10 classes; bundled, not downloaded)"


def load_data(path=None):
    """`(x, y, description)`: the digits when `path` is `None`, else the user's `.npz`."""
    if path is None:
        x, y = load_digits_data()
        return x, y, DIGITS
    x, y = load_npz(path)
    classes = len(np.unique(y))
    return x, y, f"{path} ({x.shape[0]} samples, {x.shape[1]} features, {classes} classes)"


def load_digits_data():
    """scikit-learn's bundled 8x8 digits: `x` (1797, 64) float32 in 0..16, `y` int32."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise DemoError(
            "the demo's default data needs scikit-learn: pip install 'tftriplet[demo]' "
            "(or pass --data file.npz)"
        ) from err
    digits = load_digits()
    return digits.data.astype(np.float32), digits.target.astype(np.int32)


def load_npz(path):
    """Load and check a user's `.npz` with `x` (N, ...) numeric and `y` (N,) class ids.

    `x` of more than two dimensions is flattened to `(N, D)`. `y` may be integers or
    floats holding integers.

    Raises:
        DemoError: naming what was found and what is expected.
    """
    if not os.path.isfile(path):
        raise DemoError(f"--data {path}: no such file.")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DemoError(
            f"--data {path}: could not read it as an .npz archive of numeric arrays ({err})."
        ) from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DemoError(
            f"--data {path}: expected an .npz archive (np.savez) holding arrays 'x' and 'y'; "
            f"got a single .npy array of shape {archive.shape}."
        )
    with archive:
        found = sorted(archive.files)
        missing = [name for name in ("x", "y") if name not in found]
        if missing:
            raise DemoError(
                f"--data {path}: expected arrays 'x' (N, D) and 'y' (N,); missing {missing}, "
                f"found {found}."
            )
        try:
            x = archive["x"]
            y = archive["y"]
        except ValueError as err:  # object arrays need pickle, which is never loaded
            raise DemoError(
                f"--data {path}: 'x' and 'y' must be numeric arrays, not object arrays ({err})."
            ) from err
    return check_arrays(x, y, source=f"--data {path}")


def check_arrays(x, y, source="data"):
    """Check `x` and `y` as the demo needs them; return `(x float32 (N, D), y int32)`.

    `y` follows the package's rules for class ids (`tftriplet.inputs.check_class_ids`),
    except that floats holding whole numbers are accepted (an `.npz` written from a table
    often stores ids as floats); they are converted to integers first.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.dtype.kind not in "iuf" or y.dtype.kind not in "iuf":
        raise DemoError(
            f"{source}: 'x' and 'y' must be numeric; got x of dtype {x.dtype} and y of "
            f"dtype {y.dtype}."
        )
    if y.dtype.kind == "f":
        y = _whole_numbers(y, source)
    try:
        y = check_class_ids(y, "'y'", int32=True)
    except (TypeError, ValueError) as err:
        raise DemoError(f"{source}: {err}") from err
    if x.ndim < 2 or x.shape[0] != y.shape[0]:
        raise DemoError(
            f"{source}: 'x' must have shape (N, D) with one row per label (N={y.shape[0]}); "
            f"got shape {x.shape}."
        )
    x = x.reshape(x.shape[0], -1).astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise DemoError(f"{source}: 'x' contains NaN or inf.")
    if len(np.unique(y)) < 2:
        raise DemoError(f"{source}: 'y' must hold at least 2 classes; got {len(np.unique(y))}.")
    return x, y.astype(np.int32)


def _whole_numbers(y, source):
    """Float class ids as int64, refused unless every one is a whole number within int32."""
    if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
        raise DemoError(
            f"{source}: 'y' must hold integer class ids; got floats that are not whole numbers."
        )
    if y.size and (y.min() < np.iinfo(np.int32).min or y.max() > np.iinfo(np.int32).max):
        raise DemoError(
            f"{source}: 'y' class ids must fit in int32; got floats in [{y.min()}, {y.max()}]."
        )
    return y.astype(np.int64)
