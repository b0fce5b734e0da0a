"""The demo's split: training and held-out rows, standardised with the training statistics."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tftriplet_cli.demo.options import DemoError

SPLITS = ("samples", "classes")
TEST_FRACTION = 0.3


@dataclasses.dataclass(frozen=True)
class SplitData:
    """The demo's data after the split.

    Attributes:
        source: what the data is, in words (printed and stored in the JSON).
        mode: `"samples"` or `"classes"` (`split_indices`).
        description: the split in words (printed and stored in the JSON).
        x_train: standardised training features `(N_train, D)`, float32.
        y_train: their class ids `(N_train,)`.
        x_test: the held-out features `(N_test, D)`, standardised as the training ones.
        y_test: their class ids `(N_test,)`.
    """

    source: str
    mode: str
    description: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def train_classes(self):
        """The sorted class ids of the training rows."""
        return np.unique(self.y_train)

    @property
    def test_classes(self):
        """The sorted class ids of the held-out rows."""
        return np.unique(self.y_test)


def split_data(x, y, source, mode, seed):
    """Split `x` and `y` (`split_indices`) and standardise both parts with the mean and
    standard deviation of the training rows only; return a `SplitData`."""
    train_idx, test_idx = split_indices(y, mode, seed)
    x_train, y_train, y_test = x[train_idx], y[train_idx], y[test_idx]
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0
    x_train = (x_train - mean) / std
    x_test = (x[test_idx] - mean) / std
    return SplitData(
        source=source,
        mode=mode,
        description=describe_split(mode, np.unique(y_train), np.unique(y_test), len(test_idx)),
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
    )


def split_indices(y, mode, seed, test_fraction=TEST_FRACTION):
    """Train and test row indices.

    `"samples"`: per class, a random `test_fraction` of its samples (at least one, when
    the class has two or more) is held out; train and test share their classes.
    `"classes"`: the last `ceil(test_fraction * C)` classes in sorted order are held out
    entirely (at least 2), as in Musgrave et al. 2020; this tests generalisation to unseen
    classes.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    if mode == "samples":
        test = np.zeros(len(y), dtype=bool)
        for c in classes:
            members = np.flatnonzero(y == c)
            if len(members) >= 2:
                count = max(1, int(round(test_fraction * len(members))))
                test[rng.choice(members, size=count, replace=False)] = True
    elif mode == "classes":
        num_test = max(2, math.ceil(test_fraction * len(classes)))
        if len(classes) - num_test < 2:
            raise DemoError(
                f"--split classes needs at least 4 classes (2 to train on, 2 held out); "
                f"the data has {len(classes)}. Use --split samples."
            )
        test = np.isin(y, classes[-num_test:])
    else:
        raise DemoError(f"--split must be one of {SPLITS}; got {mode!r}.")
    train_idx, test_idx = np.flatnonzero(~test), np.flatnonzero(test)
    if len(np.unique(y[train_idx])) < 2:
        raise DemoError("the training split holds fewer than 2 classes; nothing to contrast.")
    test_counts = np.unique(y[test_idx], return_counts=True)[1]
    if not np.any(test_counts >= 2):
        raise DemoError(
            "the held-out split has no class with 2 or more samples, so retrieval cannot be "
            "evaluated; give each class more samples."
        )
    return train_idx, test_idx


def describe_split(mode, train_classes, test_classes, num_test):
    """The split in words, as the demo prints it."""
    if mode == "samples":
        return (
            f"held out {num_test} samples ({TEST_FRACTION:.0%} of each class); train "
            f"and test share the {len(train_classes)} classes"
        )
    return (
        f"held out the classes {_short_list(test_classes)} entirely ({num_test} "
        f"samples); training sees only {_short_list(train_classes)}"
    )


def _short_list(classes, most=10):
    """`[0, 1, 2]`, or the first `most` and a count when there are more."""
    shown = ", ".join(str(c) for c in classes[:most])
    return f"[{shown}]" if len(classes) <= most else f"[{shown}, ...] ({len(classes)} classes)"
