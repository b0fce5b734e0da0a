"""`tftriplet demo`'s options on the command line, and its entry."""

from __future__ import annotations

import argparse
import sys

from tftriplet_cli.arguments import int_list
from tftriplet_cli.demo.compare import compare_memory
from tftriplet_cli.demo.model import STRATEGIES
from tftriplet_cli.demo.options import DemoError, Settings
from tftriplet_cli.demo.run import run_demo
from tftriplet_cli.demo.split import SPLITS


def add_parser(subparsers):
    """Add the `demo` subcommand to the `tftriplet` command line."""
    parser = subparsers.add_parser(
        "demo",
        help="train embeddings on handwritten digits (or --data) and show the result",
        description=(
            "Train a small embedding network with a triplet loss on scikit-learn's bundled "
            "digits (or your --data), evaluate recall@1, recall@5 and MAP@R on held-out data "
            "before and after training, and write a PNG and a JSON to --out."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--data", metavar="FILE.npz", help="train on your own arrays x (N, D) and y (N,)"
    )
    parser.add_argument("--out", default="tftriplet-demo", help="output folder")
    parser.add_argument("--epochs", type=int, default=15, help="training epochs")
    parser.add_argument(
        "--seed", type=int_list("seeds"), default="0",
        help="seed of split, batches and weights; with --compare-memory, comma-separated "
        "seeds (e.g. 0,1,2)",
    )
    parser.add_argument(
        "--strategy",
        choices=sorted(STRATEGIES),
        default="batch_all",
        help="triplet loss: "
        + ", ".join(f"{name} = {cls.__name__}" for name, cls in STRATEGIES.items()),
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="samples",
        help="hold out 30%% of each class's samples, or 30%% of the classes entirely",
    )
    parser.add_argument("--margin", type=float, default=0.2, help="the loss's margin")
    _add_batch_and_memory_arguments(parser)
    parser.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="also write TensorBoard logs (curves, retrieval metrics per epoch, projector)",
    )
    parser.add_argument("--quiet", action="store_true", help="no Keras progress bars")
    parser.add_argument(
        "--verbose", action="store_true", help="show the frameworks' logs (TensorFlow start-up)"
    )
    parser.set_defaults(func=main)
    return parser


def _add_batch_and_memory_arguments(parser):
    """The options of the batches' shape and of the cross-batch memory."""
    parser.add_argument(
        "--classes-per-batch", type=int, default=Settings.classes_per_batch, metavar="P",
        help="P of the P x K batches (capped at the training classes)",
    )
    parser.add_argument(
        "--samples-per-class", type=int, default=Settings.samples_per_class, metavar="K",
        help="K of the P x K batches",
    )
    parser.add_argument(
        "--memory", type=int, default=0, metavar="N",
        help="mine each batch against the N most recent training samples too, a cross-batch "
        "memory (docs/memory.md); 0: none",
    )
    parser.add_argument(
        "--memory-warmup", type=int, default=0, metavar="STEPS",
        help="training steps mined alone before the memory is used",
    )
    parser.add_argument(
        "--compare-memory", action="store_true",
        help="train each --seed twice, without and with --memory, for the same steps, and "
        "print recall@1 and MAP@R side by side (comparison.json in --out)",
    )


def main(args):
    """Entry point of `tftriplet demo`; returns the exit status."""
    import keras

    if keras.backend.backend() == "torch":
        import torch

        # The demo's ops are tiny (64-row batches): torch's intra-op threads only contend.
        # Measured on a shared 2-core machine: 600 ms/step with the default, 20 with one.
        torch.set_num_threads(1)
    options = {
        "out": args.out,
        "data": args.data,
        "epochs": args.epochs,
        "strategy": args.strategy,
        "split": args.split,
        "margin": args.margin,
        "classes_per_batch": args.classes_per_batch,
        "samples_per_class": args.samples_per_class,
        "memory_size": args.memory,
        "memory_warmup": args.memory_warmup,
        "tensorboard": args.tensorboard,
        "verbose": 0 if args.quiet else "auto",
    }
    try:
        if args.compare_memory:
            compare_memory(seeds=args.seed, **options)
        elif len(args.seed) > 1:
            raise DemoError(
                f"--seed takes several seeds only with --compare-memory; got {args.seed}."
            )
        else:
            run_demo(seed=args.seed[0], **options)
    except DemoError as err:
        print(f"tftriplet demo: error: {err}", file=sys.stderr)
        return 2
    return 0

