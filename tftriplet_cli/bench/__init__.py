"""`tftriplet bench`: time and peak memory of a loss + gradient step, per method.

Each measurement (one method at one batch size) runs in a fresh Python subprocess, so that
its peak resident memory (`getrusage(RUSAGE_SELF).ru_maxrss`) is its own and the numbers
of different methods never mix. The child builds the inputs, runs loss + gradient once to
trace/compile and warm up, then `repeats` times, and reports the median wall time, the
median CPU time of the process (user + system: less sensitive than wall time to other load
on a shared machine) and its peak RSS, plus the loss value so that methods can be checked
against each other.

Methods:
    `dense`: the seed's `(B, B, B)` form (`method="dense"`), Keras backend of choice.
    `sorted`: the exact `O(B^2)`-memory form (`method="sorted"`).
    `pml`: pytorch-metric-learning's `TripletMarginLoss` over all triplets (no miner,
        `triplets_per_anchor="all"`), reducer `AvgNonZeroReducer` (the mean over the
        positive hinges, the seed's denominator), `LpDistance(p=2, power=1,
        normalize_embeddings=False)` (plain Euclidean, as here), margin as given. It
        materialises a `B^3` mask and the indices of every valid triple.
    `matmul`: not a loss: one `B x B x D` product `e @ e^T` (no gradient), the floor
        a batch-all step is compared with (its distance matrix alone costs one).
    `cross_replica`: `BatchAllTripletLoss(cross_replica=True)` under
        `tf.distribute.MirroredStrategy` over `--replicas` logical CPU devices (set up
        in the worker before TensorFlow starts), the global batch `B` split evenly: one
        step of every replica's loss share and its gradient (TensorFlow only).
    `batch_all`, `batch_hard`, `semi_hard`: the loss classes, one training step each; with
        `--memory N`, a step with a full cross-batch memory of `N` samples, filled before
        the step from earlier P x K batches (untimed), which the batch then enters
        (`tftriplet_cli.bench.memory`).

`--preset large` runs the large-batch rows: the matmul and sorted at B=8192, sorted at
B=32768, and sorted against cross_replica at B=4096. `--preset backends` runs sorted at
B=2048 and 8192 in a TensorFlow graph, under XLA, `jax.jit` and PyTorch, and each backend's
matmul at 8192: the table gives each row in multiples of the TensorFlow graph's time and of
its own backend's matmul. `--preset memory` runs the three losses at B=256 alone and with
a full memory of 4096 and of 65536 samples (docs/memory.md).

Inputs: `B` embeddings of dimension `D` drawn from N(0, 1/D) (fixed seed), labels with
`per_class` samples per class in a shuffled order (the P x K batches of metric learning).

One module a job: `options` (the command's options and presets), `runner` (the parent:
one subprocess a measurement, the rows it skips), `worker` (the measurement child),
`methods` (one loss + gradient step a method), `memory` (the loss classes' steps, with a
full memory), `kernel` (which kernel a row ran, for the
table), `report` (the machine line and the table).
"""

from tftriplet_cli.bench.options import BACKENDS_PRESET, LARGE_PRESET
from tftriplet_cli.bench.runner import add_parser

__all__ = ["BACKENDS_PRESET", "LARGE_PRESET", "add_parser"]
