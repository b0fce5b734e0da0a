"""The ``tftriplet`` command line."""

from __future__ import annotations

import argparse
import sys

from tftriplet._startup import quiet_framework_logs
from tftriplet.cli import demo


def cmd_seed(args):
    """Recompute the seed program's case with the Keras loss and print the seed's line."""
    import numpy as np

    from tftriplet import BatchAllTripletLoss, FractionPositiveTriplets
    from tftriplet_conformance.glibc_rand import seed_program_inputs

    labels, embeddings = seed_program_inputs()
    # The seed program computes in C doubles, so its line is reproduced in float64.
    dtype = "float32" if args.float32 else "float64"
    x = np.asarray(embeddings, dtype=dtype)
    y = np.asarray(labels, dtype="int32")
    loss = BatchAllTripletLoss(margin=0.2, squared=False, dtype=dtype)(y, x)
    metric = FractionPositiveTriplets(margin=0.2, squared=False, dtype=dtype)
    metric.update_state(y, x)
    print(f"The triplet loss is {float(loss):f} with positives {float(metric.result()):f} ")
    return 0


def cmd_bench(args):
    """Time loss + gradient per method and batch size (see tftriplet/cli/bench.py)."""
    from tftriplet.cli import bench

    return bench.run(args)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tftriplet", description="Triplet losses for Keras, and their conformance suite."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    seed = sub.add_parser("seed", help="recompute the seed program's case and print its line")
    seed.add_argument(
        "--float32", action="store_true", help="compute in float32 instead of float64"
    )
    seed.add_argument("--verbose", action="store_true", help="show the frameworks' logs")
    seed.set_defaults(func=cmd_seed)
    demo.add_parser(sub)
    from tftriplet.cli.bench import add_arguments as add_bench_arguments

    bench = sub.add_parser(
        "bench", help="time and peak memory of loss + gradient: dense, sorted, pml"
    )
    add_bench_arguments(bench)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv=None):
    # The framework's start-up lines are already filtered when this process is the
    # `tftriplet` command (tftriplet/_startup.py); this quiets the subprocesses it starts.
    args = build_parser().parse_args(argv)
    quiet_framework_logs(verbose=getattr(args, "verbose", False))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
