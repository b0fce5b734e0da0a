"""The project's C implementation (`conformance/c/triplet.c`), built with the system `cc`.

The first user of the process protocol (`adapters.process`): the runner compiles
`triplet.c` once per adapter into a temporary folder (`$CC` or `cc`) and exchanges JSON
messages with it, one request per fixture and dtype. It implements only the batch-all
hinge with (squared) Euclidean distances: `supports` says so beforehand, and the program
itself answers `unsupported` for the rest. For the fixture that records the
seed program's printed line (`seed_c_program`) it also compiles and runs the seed program
itself (`seed_program.c`, which draws its inputs with the C library's `rand()`; only
glibc's matches the fixture, so that run needs glibc).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from tftriplet_conformance import C_DIR
from tftriplet_conformance.adapters.process import ProcessAdapter
from tftriplet_conformance.guard import ImplementationFault
from tftriplet_conformance.variants import variant_of

CFLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror"]
#: The fixture whose `printed` line is the seed program's own output.
SEED_FIXTURE = "seed_c_program"


def compiler():
    """The C compiler command, or `None`."""
    return shutil.which(os.environ.get("CC", "cc"))


def compile_c(source, out_dir):
    """Compile `source` into `out_dir`; returns the executable's path."""
    exe = Path(out_dir) / Path(source).stem
    cmd = [compiler(), *CFLAGS, "-o", str(exe), str(source), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return exe


class CAdapter(ProcessAdapter):
    """`triplet.c` through the process protocol (float64, analytic gradient)."""

    def __init__(self):
        super().__init__([], name="c")
        # what triplet.c announces; checked against its start reply in prepare()
        self.dtypes, self.differentiable, self.not_reported = ("float64",), True, ()
        self._dir = None
        self._seed_line = None

    def available(self):
        if compiler() is None:
            return False, f"no C compiler ({os.environ.get('CC', 'cc')!r} not on PATH)"
        return True, ""

    def supports(self, fixture):
        """What `triplet.c` answers `unsupported` to, known beforehand (a test checks
        that the two agree): only the batch-all hinge with Euclidean or squared distances."""
        ok, reason = super().supports(fixture)
        if not ok:
            return ok, reason
        loss = fixture["loss"]
        if variant_of(fixture).c_name is None:
            return False, f"triplet.c implements only batch_all, not {loss['name']}"
        if loss.get("soft", False):
            return False, "triplet.c implements only the hinge, not the soft margin (soft=true)"
        if loss.get("distance", "euclidean") not in ("euclidean", "squared_euclidean"):
            return False, f"triplet.c has no {loss['distance']} distance"
        return True, ""

    def prepare(self, fixtures):
        if not self.argv:
            self._dir = tempfile.TemporaryDirectory(prefix="conformance-c-")
            self.argv = [str(compile_c(C_DIR / "triplet.c", self._dir.name))]
            if platform.libc_ver()[0] == "glibc":
                seed = compile_c(C_DIR / "seed_program.c", self._dir.name)
                run = subprocess.run([str(seed)], capture_output=True, text=True, check=True)
                self._seed_line = run.stdout.strip()
        if self._proc is None:
            declared = (self.dtypes, self.differentiable, self.not_reported)
            self.start()
            announced = (self.dtypes, self.differentiable, self.not_reported)
            if announced != declared:
                raise ImplementationFault(f"triplet.c announced {announced}, not {declared}")

    def close(self):
        """Stop the program and remove what `prepare` compiled."""
        super().close()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir, self.argv = None, []

    def run(self, fixture, dtype):
        self.prepare([fixture])
        runs = super().run(fixture, dtype)
        if fixture["name"] == SEED_FIXTURE and self._seed_line is not None:
            runs["seed_program.c"] = {"printed": self._seed_line}
        return runs
