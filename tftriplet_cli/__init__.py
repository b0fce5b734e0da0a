"""The `tftriplet` command line: `tftriplet demo`, `tftriplet bench` and `tftriplet seed`.

A package beside the library rather than inside it, for two reasons:

- `import tftriplet` runs no command-line code, yet the command must drop TensorFlow's
  start-up lines, which is only possible while the framework is first imported. Python
  imports a package's parents before the package, so an entry point inside `tftriplet`
  would always come after Keras and TensorFlow. `main` (the console script `tftriplet`,
  and `python -m tftriplet_cli`) quiets the start-up first (`tftriplet_cli._startup`) and
  only then imports the library.
- The command line uses both the library and the conformance suite (`tftriplet seed` draws
  the seed program's inputs with `tftriplet_conformance.glibc_rand`), and the suite imports
  the library: the library itself imports neither.

This module and `_startup` use the standard library only: importing them loads no framework.
"""

import sys


def main(argv=None):
    """Run the `tftriplet` command and return its exit status.

    Args:
        argv: the arguments after the command's name (`sys.argv[1:]` when `None`).

    Example:
        ```python
        from tftriplet_cli import main
        main(["seed"])  # prints "The triplet loss is 0.270146 with positives 0.668605"
        ```
    """
    from tftriplet_cli._startup import quiet_start

    argv = sys.argv[1:] if argv is None else list(argv)
    quiet_start(verbose="--verbose" in argv)
    from tftriplet_cli.commands import run  # imports the library, Keras and its backend

    return run(argv)
