"""Argument types shared by the subcommands' parsers."""

from __future__ import annotations

import argparse


def int_list(what, minimum=None):
    """An argparse `type`: comma-separated integers (`"0,1,2"`), at least one, each at
    least `minimum` when given; an error names `what` was expected and the text."""

    def parse(text):
        try:
            values = [int(v) for v in text.split(",") if v.strip()]
        except ValueError as err:
            raise argparse.ArgumentTypeError(
                f"expected {what} as comma-separated integers; got {text!r}"
            ) from err
        if not values:
            raise argparse.ArgumentTypeError(f"expected at least one of {what}; got {text!r}")
        if minimum is not None and min(values) < minimum:
            raise argparse.ArgumentTypeError(
                f"expected {what} of at least {minimum}; got {text!r}"
            )
        return values

    return parse
