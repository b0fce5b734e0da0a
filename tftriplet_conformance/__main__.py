"""Command line: `python -m tftriplet_conformance [--backend NAME ...] [--adapter MOD:NAME]`,
`... generate` and `... report`."""

from __future__ import annotations

import argparse
import os
import sys

from tftriplet_conformance.errors import UsageError
from tftriplet_conformance.guard import DEFAULT_TIMEOUT, REAL_EXIT


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
    """The adapters to run, and whether they were asked for by name (then each must run).

    `--adapter` and `--command` alone run only those; with `--backend`, the named backends
    run too; with neither, every built-in backend and every one installed packages register
    runs (entry points are loaded only then, or to look up a `--backend` name).
    """
    from tftriplet_conformance.adapters import all_adapters, entry_point_adapters, load_or_broken
    from tftriplet_conformance.adapters.process import ProcessAdapter
    from tftriplet_conformance.runner import select

    extra = [load_or_broken(spec) for spec in args.adapter or ()]
    extra += [ProcessAdapter(command) for command in args.commands or ()]
    if extra and not args.backend:
        return extra, True
    known = all_adapters() + entry_point_adapters()
    if not args.backend:
        return known, args.strict
    return select(known, args.backend) + extra, True


def _run(args):
    from tftriplet_conformance.fixtures import load_fixtures
    from tftriplet_conformance.runner import format_report, run

    fixtures = load_fixtures(args.fixtures, args.fixture, with_optional=True)
    fresh = _fresh(args, fixtures)
    adapters, required = _adapters(args)
    log = None if args.quiet else _Progress()
    outcome = run(fixtures, adapters, required=required, log=log, timeout=args.timeout,
                  fresh=fresh)
    print(format_report(fixtures, outcome, verbose=args.verbose))
    return 1 if outcome.failed else 0


def _fresh(args, fixtures):
    """The run's fresh cases: drawn (`--fresh`, `--fresh-seed`), or none (`--no-fresh`)."""
    from tftriplet_conformance.fresh import Fresh, draw

    if args.no_fresh is None:
        return draw(fixtures, args.fresh_seed, args.fresh)
    if args.fresh_seed is not None or args.fresh != 1:
        raise UsageError("--no-fresh runs no fresh case: it cannot go with --fresh or "
                         "--fresh-seed")
    if not args.no_fresh.strip():
        raise UsageError("--no-fresh needs a reason, shown in the report: --no-fresh 'why'")
    return Fresh.none(args.no_fresh)


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0; got {text!r}")
    return value


def _integer(low, high, what):
    """An argparse type: an int in `[low, high)`."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value < high:
            raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}")
        return value

    return parse


def _generate(args):
    from tftriplet_conformance.generate import check_drift, write_fixtures

    if args.check:
        problems = check_drift(args.out)
        print(f"{len(problems)} difference(s) between the generator (tftriplet_conformance.cases) "
              "and the fixtures")
        return 1 if problems else 0
    return 1 if write_fixtures(args.out, force=args.force) else 0


def _report(args):
    from tftriplet_conformance.adapters import peer_adapters
    from tftriplet_conformance.fixtures import load_fixtures
    from tftriplet_conformance.report import render, write_or_check

    text = render(load_fixtures(args.fixtures), peer_adapters())
    return write_or_check(args.out, text, args.check)


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m tftriplet_conformance",
        description="Run the triplet-loss conformance fixtures on every available backend.",
    )
    _add_run_options(parser)
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
    return parser


def _add_run_options(parser):
    parser.add_argument(
        "--backend",
        action="append",
        help="run this backend; only the named ones run (repeatable): numpy, c, tensorflow, "
        "jax, torch, pytorch-metric-learning, sentence-transformers, tensorflow-similarity, "
        "tensorflow-addons, or one an installed package registers",
    )
    parser.add_argument(
        "--adapter",
        action="append",
        metavar="MODULE:NAME",
        help="load and run this adapter (an Adapter subclass or instance; repeatable); "
        "without --backend only the --adapter and --command implementations run",
    )
    parser.add_argument(
        "--command",
        action="append",
        dest="commands",
        metavar="COMMAND",
        help="start COMMAND (e.g. 'node triplet.js') and certify it through the process "
        "protocol (docs/conformance.md; repeatable); without --backend only the --adapter "
        "and --command implementations run",
    )
    parser.add_argument("--fixture", action="append", help="run only this fixture (repeatable)")
    parser.add_argument("--fixtures", help="the fixtures folder (default: the package's)")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="without --backend too, a backend that is not available, or is compared on no "
        "fixture, fails (a backend named by --backend, --adapter or --command always does)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="time limit of one adapter call for one fixture: a hang fails that backend "
        "(default: %(default)g)",
    )
    _add_fresh_options(parser)
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress lines on stderr"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also detail xfails and differences"
    )


def _add_fresh_options(parser):
    """The options of the fresh cases (`tftriplet_conformance.fresh`)."""
    parser.add_argument(
        "--fresh",
        type=_integer(1, 1000, "an int from 1 to 999"),
        default=1,
        metavar="N",
        help="fresh cases per loss variant (default: %(default)s): random cases drawn for "
        "this run, in no file, which every implementation runs beside the fixtures",
    )
    parser.add_argument(
        "--fresh-seed",
        type=_integer(0, 2**32, "an int from 0 to 2**32 - 1"),
        metavar="SEED",
        help="draw the fresh cases of the run that printed SEED, given the same --fixture, "
        "--fixtures and --fresh (default: a new seed)",
    )
    parser.add_argument(
        "--no-fresh",
        metavar="REASON",
        help="run no fresh case, for REASON (shown in the report); nothing then tells a "
        "result computed from one looked up in the fixture files",
    )


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.verbose:  # inherited by the framework workers (see tftriplet_cli/_startup.py)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    command = {"generate": _generate, "report": _report}.get(args.command, _run)
    try:
        return command(args)
    except UsageError as err:  # an adapter's fault is never one: it is in the report
        parser.error(str(err))


def _exit(status):
    """Exit with `status`. A failure leaves at once (`os._exit`, after flushing), so that
    nothing an in-process adapter left behind (an `atexit` handler, a thread) can turn it
    into a success; the runner has closed every adapter by then."""
    sys.stdout.flush()
    sys.stderr.flush()
    if status:
        REAL_EXIT(status)
    sys.exit(status)


if __name__ == "__main__":
    _exit(main())
