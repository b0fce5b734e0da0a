"""`tftriplet bench`'s options, and the rows of its presets."""

from __future__ import annotations

import argparse

from tftriplet_cli.arguments import int_list
from tftriplet_cli.bench.memory import LOSS_METHODS

DEFAULT_SIZES = (32, 128, 512, 768, 2048, 8192)
DEFAULT_METHODS = ("dense", "sorted", "pml")
#: The loss classes (`tftriplet_cli.bench.memory.LOSS_METHODS`), with `--memory` each.
EXTRA_METHODS = ("matmul", "cross_replica", *LOSS_METHODS)

#: `--preset large`: (batch size, method) rows, each in its own process.
LARGE_PRESET = (
    (8192, "matmul"),
    (8192, "sorted"),
    (32768, "sorted"),
    (4096, "sorted"),
    (4096, "cross_replica"),
)
BACKENDS = ("tensorflow", "jax", "torch")

#: `--preset memory`: (batch size, method, memory size) rows, each in its own process: a
#: step of each loss alone (memory 0), and with a full cross-batch memory of 4096 and of
#: 65536 samples.
MEMORY_PRESET = tuple((256, method, n) for n in (0, 4096, 65536) for method in LOSS_METHODS)

#: `--preset backends`: (batch size, method, backend, XLA) rows with default arguments,
#: each in its own process: a TensorFlow graph against XLA, `jax.jit` and PyTorch at the
#: same batch sizes, and each backend's own `e @ e^T` floor (docs/performance.md).
BACKENDS_PRESET = (
    *((b, "sorted", backend, xla) for b in (2048, 8192) for backend, xla in (
        ("tensorflow", False), ("tensorflow", True), ("jax", False), ("torch", False))),
    *((8192, "matmul", backend, False) for backend in ("tensorflow", "jax", "torch")),
)


def add_arguments(parser):
    """The options of `tftriplet bench`."""
    parser.add_argument(
        "--sizes", type=int_list("batch sizes", minimum=1), default=list(DEFAULT_SIZES),
        help="comma-separated batch sizes (default: %(default)s)",
    )
    parser.add_argument(
        "--methods", type=_method_list, default=list(DEFAULT_METHODS),
        help="comma-separated among dense,sorted,pml,matmul,cross_replica and the losses "
        "batch_all,batch_hard,semi_hard (default: dense,sorted,pml)",
    )
    parser.add_argument(
        "--memory", type=int_list("memory sizes", minimum=1), default=None, metavar="N",
        help="batch_all, batch_hard, semi_hard: a training step with a full cross-batch "
        "memory of N samples (comma-separated sizes: a row each)",
    )
    parser.add_argument(
        "--preset", choices=("large", "backends", "memory"), default=None,
        help="instead of --sizes x --methods: large, the large-batch rows (matmul and "
        "sorted at 8192, sorted at 32768, sorted and cross_replica at 4096); backends, "
        "sorted at 2048 and 8192 in a TensorFlow graph, under XLA, JAX and PyTorch, and "
        "the matmul at 8192; memory, the three losses at B=256 alone and with a full "
        "memory of 4096 and of 65536 samples",
    )
    parser.add_argument(
        "--replicas", type=int, default=2,
        help="cross_replica: logical CPU replicas (default: 2)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median)")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension D")
    parser.add_argument("--per-class", type=int, default=8, help="samples per class")
    parser.add_argument("--margin", type=float, default=0.2)
    parser.add_argument(
        "--backend", choices=BACKENDS, default="tensorflow",
        help="Keras backend for dense and sorted (pml always runs in PyTorch)",
    )
    parser.add_argument("--xla", action="store_true", help="TensorFlow: jit_compile=True")
    parser.add_argument(
        "--row-sort", choices=("auto", "merged", "positives"), default="auto",
        help="sorted: sort only each anchor's positives, whole rows, or pick (default: auto)",
    )
    parser.add_argument(
        "--max-gb", type=float, default=12.0,
        help="skip a method whose estimated peak memory exceeds this (default: 12)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per measurement")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--verbose", action="store_true", help="print each result as it comes")


def _method_list(text):
    """Known method names from `"dense,sorted"`, or an error naming the known ones."""
    methods = [m.strip() for m in text.split(",") if m.strip()]
    known = DEFAULT_METHODS + EXTRA_METHODS
    bad = [m for m in methods if m not in known]
    if bad or not methods:
        raise argparse.ArgumentTypeError(
            f"methods must be among {', '.join(known)}; got {text!r}"
        )
    return methods
