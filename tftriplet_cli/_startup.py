"""Quiet start-up for the command line: the commands print their own output only.

TensorFlow writes start-up lines to stderr when it is imported (oneDNN, cpu_feature_guard,
"Could not find cuda drivers", and absl's "All log messages before absl::InitializeLog() is
called are written to STDERR"). `TF_CPP_MIN_LOG_LEVEL=3` silences most of them, but only if
it is set before TensorFlow is imported, and the oneDNN and absl lines are written at import
whatever its value (`TF_ENABLE_ONEDNN_OPTS=0` would hide the oneDNN line too, but it turns
the oneDNN kernels off and so changes speed and rounding: it is left alone).

`tftriplet_cli.main` calls `quiet_start` before it imports the library: unless the command
has `--verbose`, it sets the environment (inherited by the subprocesses the commands start)
and imports Keras with stderr filtered: the known start-up lines are dropped, every other
line is written through. The library never imports this module.

Standard library only: this module runs before any framework is imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile

#: Set (unless already set) for the quiet commands and the subprocesses they start.
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3"}

#: Start-up lines of TensorFlow/XLA: absl-format INFO and WARNING lines, absl's preamble, the
#: continuation of the cpu_feature_guard line, and the CUDA probes of a GPU wheel on a
#: machine without a GPU.
START_UP_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] "
    r"|To enable the following instructions: "
    r"|E\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] (failed call to cuInit|Unable to register cu)"
)


def quiet_framework_logs(verbose=False):
    """Set `QUIET_ENVIRONMENT` (where unset) unless `verbose`; return whether set.

    Call it before TensorFlow is imported, and before starting subprocesses, which inherit
    the environment. Python-side framework loggers are set to ERROR when `verbose` is off.
    """
    if verbose:
        return False
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for logger in ("tensorflow", "absl", "jax._src.xla_bridge"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    return True


@contextlib.contextmanager
def start_up_lines_filtered():
    """Capture file descriptor 2 (C++ writes there directly); on exit write back every line
    that is not a `START_UP_LINE`."""
    fd = 2  # C++ logging writes to the process's file descriptor 2, whatever sys.stderr is
    try:
        saved = os.dup(fd)
    except OSError:  # no file descriptor 2 (a detached process): nothing to filter
        yield
        return
    _flush_stderr()
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            _flush_stderr()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = [
                line for line in text.splitlines(keepends=True) if not START_UP_LINE.match(line)
            ]
            if kept:
                os.write(fd, "".join(kept).encode("utf-8"))


def _flush_stderr():
    with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stderr.flush()


def quiet_start(verbose=False):
    """Quiet the command's frameworks unless `verbose`: set the environment and the loggers
    (`quiet_framework_logs`), then import Keras, and so its backend, with the start-up lines
    dropped. Keras imported already (a test calling `tftriplet_cli.main`) is left as it is.
    """
    if not quiet_framework_logs(verbose) or "keras" in sys.modules:
        return
    with start_up_lines_filtered():
        import keras  # noqa: F401  (imports the backend: TensorFlow, JAX or PyTorch)
