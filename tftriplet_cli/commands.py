"""The `tftriplet` command's parser and dispatch: one module per subcommand."""

from __future__ import annotations

import argparse

from tftriplet_cli import bench, demo, seed


def build_parser():
    """The `tftriplet` parser with its subcommands `seed`, `demo` and `bench`."""
    parser = argparse.ArgumentParser(
        prog="tftriplet", description="Triplet losses for Keras, and their conformance suite."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    seed.add_parser(sub)
    demo.add_parser(sub)
    bench.add_parser(sub)
    return parser


def run(argv):
    """Parse `argv` (the arguments after `tftriplet`) and run the subcommand."""
    args = build_parser().parse_args(argv)
    return args.func(args)
