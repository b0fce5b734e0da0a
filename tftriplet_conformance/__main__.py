"""Command line: ``python -m tftriplet_conformance [--backend NAME ...]`` and ``... generate``."""

from __future__ import annotations

import argparse
import os
import sys


def _run(args):
    from tftriplet_conformance.fixtures import load_fixtures
    from tftriplet_conformance.runner import failed, format_report, run

    fixtures = load_fixtures(args.fixtures, args.fixture)
    matrix, skipped = run(fixtures, args.backend)
    print(format_report(fixtures, matrix, skipped, verbose=args.verbose))
    if args.strict and skipped:
        print(f"--strict: backend(s) not available: {sorted(skipped)}")
        return 1
    return 1 if failed(matrix) else 0


def _generate(args):
    from tftriplet_conformance.generate import check_drift, write_fixtures

    if args.check:
        problems = check_drift(args.out)
        print(f"{len(problems)} difference(s) between cases.py and the fixtures")
        return 1 if problems else 0
    return 1 if write_fixtures(args.out, force=args.force) else 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tftriplet_conformance",
        description="Run the triplet-loss conformance fixtures on every available backend.",
    )
    parser.add_argument(
        "--backend",
        action="append",
        help="run only this backend (repeatable): numpy, c, tensorflow, jax, torch",
    )
    parser.add_argument("--fixture", action="append", help="run only this fixture (repeatable)")
    parser.add_argument("--fixtures", help="the fixtures folder (default: the package's)")
    parser.add_argument(
        "--strict", action="store_true", help="a selected backend that is not available fails"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also detail xfails")
    sub = parser.add_subparsers(dest="command")
    gen = sub.add_parser("generate", help="(re)write the fixtures from the cases")
    gen.add_argument("--out", help="the folder to write (default: the package's fixtures)")
    gen.add_argument(
        "--force", action="store_true", help="rewrite fixtures whose golden values change"
    )
    gen.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a fixture would change"
    )
    args = parser.parse_args(argv)
    if not args.verbose:  # inherited by the framework workers (see tftriplet/_startup.py)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return _generate(args) if args.command == "generate" else _run(args)


if __name__ == "__main__":
    sys.exit(main())
