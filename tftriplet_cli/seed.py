"""`tftriplet seed`: the seed program's case, recomputed with the Keras loss.

The seed program (the C program the project grew from, `conformance/c/seed_program.c`) draws
its inputs from glibc's `rand()` and prints one line; this command draws the same inputs
(`tftriplet_conformance.glibc_rand`) and prints the same line from `BatchAllTripletLoss` and
`FractionPositiveTriplets`.
"""

from __future__ import annotations


def add_parser(subparsers):
    """Add the `seed` subcommand to the `tftriplet` command line."""
    parser = subparsers.add_parser(
        "seed", help="recompute the seed program's case and print its line"
    )
    parser.add_argument(
        "--float32", action="store_true", help="compute in float32 instead of float64"
    )
    parser.add_argument("--verbose", action="store_true", help="show the frameworks' logs")
    parser.set_defaults(func=main)
    return parser


def main(args):
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
