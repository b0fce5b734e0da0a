"""The demo's options (`Settings`) and its error for input the user can fix (`DemoError`)."""

from __future__ import annotations

import dataclasses


class DemoError(ValueError):
    """A problem with the demo's input that the user can fix; the CLI prints its message."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """The options of one demo run: the keyword arguments of `run_demo`.

    Attributes:
        out: the folder for `embeddings.png` and `results.json`.
        data: a `.npz` with arrays `x` (N, D) and `y` (N,), or `None` for the digits.
        epochs: training epochs, at least 1.
        seed: the seed of the split, the batches and the network's weights.
        strategy: the loss, a key of `STRATEGIES` (`tftriplet_cli.demo.model`).
        split: `"samples"` or `"classes"` (`tftriplet_cli.demo.split.split_indices`).
        margin: the loss's and the metrics' margin.
        memory_size: the loss's cross-batch memory in samples (`--memory`; 0: none).
        memory_warmup: training steps before the memory is used (`--memory-warmup`).
        classes_per_batch: P of the P x K batches (at most the training classes).
        samples_per_class: K of the P x K batches.
        embedding_dim: the dimension of the embeddings.
        learning_rate: Adam's learning rate.
        tensorboard: a folder for TensorBoard logs, or `None`.
        verbose: Keras' `fit` verbosity (0, 1, 2 or `"auto"`).
    """

    out: str = "tftriplet-demo"
    data: str | None = None
    epochs: int = 15
    seed: int = 0
    strategy: str = "batch_all"
    split: str = "samples"
    margin: float = 0.2
    memory_size: int = 0
    memory_warmup: int = 0
    classes_per_batch: int = 8
    samples_per_class: int = 8
    embedding_dim: int = 32
    learning_rate: float = 1e-3
    tensorboard: str | None = None
    verbose: int | str = 1
