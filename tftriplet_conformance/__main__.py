"""Command line: ``python -m tftriplet_conformance [--backend NAME ...] [--adapter MOD:NAME]``,
``... generate`` and ``... report``."""

from __future__ import annotations

import argparse
import os
import sys


class _Progress:
    """Progress lines on stderr: one line rewritten in place on a terminal, else one each."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.width = 0

    def __call__(self, line):
        if self.tty and ": fixture " in line:
            self.stream.write("\r" + line.ljust(self.width)[:200])
            self.width = len(line)
        else:
            clear = "\r" + " " * self.width + "\r" if self.width else ""
            self.stream.write(clear + line + "\n")
            self.width = 0
        self.stream.flush()


def _adapters(args):
    """The built-in adapters, those installed packages register, and ``--adapter`` ones."""
    from tftriplet_conformance.adapters import all_adapters, entry_point_adapters, load_adapter

    adapters = all_adapters() + entry_point_adapters()
    extra = [load_adapter(spec) for spec in args.adapter or ()]
    known = {a.name for a in adapters}
    clash = [a.name for a in extra if a.name in known]
    if clash:
        raise SystemExit(f"--adapter: the name(s) {clash} are taken by built-in backends")
    return adapters + extra, [a.name for a in extra]


def _run(args):
    from tftriplet_conformance.fixtures import load_fixtures
    from tftriplet_conformance.runner import failed, format_report, run

    adapters, extra = _adapters(args)
    backends = args.backend
    if extra:  # an --adapter runs; with --backend too, both run
        backends = (backends or []) + extra
    fixtures = load_fixtures(args.fixtures, args.fixture)
    log = None if args.quiet else _Progress()
    matrix, skipped = run(fixtures, backends, adapters=adapters, log=log)
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


def _report(args):
    from tftriplet_conformance.adapters import peer_adapters
    from tftriplet_conformance.fixtures import load_fixtures
    from tftriplet_conformance.report import render, write_or_check

    text = render(load_fixtures(args.fixtures), peer_adapters())
    return write_or_check(args.out, text, args.check)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tftriplet_conformance",
        description="Run the triplet-loss conformance fixtures on every available backend.",
    )
    parser.add_argument(
        "--backend",
        action="append",
        help="run only this backend (repeatable): numpy, c, tensorflow, jax, torch, "
        "pytorch-metric-learning, sentence-transformers, tensorflow-similarity, "
        "tensorflow-addons, or one an installed package registers",
    )
    parser.add_argument(
        "--adapter",
        action="append",
        metavar="MODULE:NAME",
        help="also load and run this adapter (an Adapter subclass or instance; repeatable)",
    )
    parser.add_argument("--fixture", action="append", help="run only this fixture (repeatable)")
    parser.add_argument("--fixtures", help="the fixtures folder (default: the package's)")
    parser.add_argument(
        "--strict", action="store_true", help="a selected backend that is not available fails"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress lines on stderr"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also detail xfails and differences"
    )
    sub = parser.add_subparsers(dest="command")
    gen = sub.add_parser("generate", help="(re)write the fixtures from the cases")
    gen.add_argument("--out", help="the folder to write (default: the package's fixtures)")
    gen.add_argument(
        "--force", action="store_true", help="rewrite fixtures whose golden values change"
    )
    gen.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a fixture would change"
    )
    rep = sub.add_parser("report", help="write the peers report (docs/peers.md)")
    rep.add_argument("--out", default="docs/peers.md", help="the file (default: %(default)s)")
    rep.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the file is stale"
    )
    args = parser.parse_args(argv)
    if not args.verbose:  # inherited by the framework workers (see tftriplet/_startup.py)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.command == "generate":
        return _generate(args)
    if args.command == "report":
        return _report(args)
    try:
        return _run(args)
    except ValueError as err:
        parser.error(str(err))


if __name__ == "__main__":
    sys.exit(main())
