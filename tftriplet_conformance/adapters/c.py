"""The project's C implementation (``conformance/c/triplet.c``), built with the system ``cc``.

The runner compiles it once per process into a temporary folder (``$CC`` or ``cc``) and
runs it on every fixture through its text format (see the header of ``triplet.c``). For
the fixture that records the seed program's printed line it also compiles and runs the
seed program itself (``seed_program.c``, which draws its inputs with the C library's
``rand()``; only glibc's matches the fixture, so that run needs glibc).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from tftriplet_conformance import C_DIR
from tftriplet_conformance.adapters import Adapter
from tftriplet_conformance.variants import squared_from, variant_of

CFLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror"]


def compiler():
    """The C compiler command, or ``None``."""
    return shutil.which(os.environ.get("CC", "cc"))


def compile_c(source, out_dir):
    """Compile ``source`` into ``out_dir``; returns the executable's path."""
    exe = Path(out_dir) / Path(source).stem
    cmd = [compiler(), *CFLAGS, "-o", str(exe), str(source), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return exe


def format_input(fixture):
    """A fixture in ``triplet.c``'s text format (``%.17g`` round-trips float64)."""
    loss = fixture["loss"]
    inputs = fixture["inputs"]
    embeddings = inputs["embeddings"]
    lines = [
        f"{variant_of(fixture).c_name} {len(embeddings)} {len(embeddings[0])} "
        f"{loss['margin']!r} {int(squared_from(loss))}",
        " ".join(str(int(x)) for x in inputs["labels"]),
    ]
    lines.extend(" ".join(repr(float(x)) for x in row) for row in embeddings)
    return "\n".join(lines) + "\n"


def parse_output(text, counts):
    """``triplet.c``'s printed outputs as a dict; the keys in ``counts`` are integers."""
    outputs, rows, in_gradient = {}, [], False
    for line in text.splitlines():
        if in_gradient:
            rows.append([float(x) for x in line.split()])
            continue
        key, _, value = line.partition(" ")
        if key == "gradient":
            in_gradient = True
        elif key == "printed":
            outputs["printed"] = value
        elif key in counts:
            outputs[key] = int(value)
        else:
            outputs[key] = float(value)
    outputs["gradient"] = rows
    return outputs


class CAdapter(Adapter):
    name = "c"
    dtypes = ("float64",)
    differentiable = True

    def __init__(self):
        self._dir = None
        self._exe = None
        self._seed_line = None

    def available(self):
        if compiler() is None:
            return False, f"no C compiler ({os.environ.get('CC', 'cc')!r} not on PATH)"
        return True, ""

    def supports(self, fixture):
        """Only the batch-all hinge with Euclidean or squared distances (the seed's loss)."""
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
        if self._exe is not None:
            return
        self._dir = tempfile.TemporaryDirectory(prefix="conformance-c-")
        self._exe = compile_c(C_DIR / "triplet.c", self._dir.name)
        if platform.libc_ver()[0] == "glibc":
            seed = compile_c(C_DIR / "seed_program.c", self._dir.name)
            run = subprocess.run([str(seed)], capture_output=True, text=True, check=True)
            self._seed_line = run.stdout.strip()

    def run(self, fixture, dtype):
        self.prepare([fixture])
        proc = subprocess.run(
            [str(self._exe)], input=format_input(fixture), capture_output=True, text=True
        )
        if proc.returncode != 0:
            return {"triplet.c": {"error": proc.stderr.strip()}}
        runs = {"triplet.c": parse_output(proc.stdout, variant_of(fixture).counts)}
        if "printed" in fixture["expected"] and self._seed_line is not None:
            runs["seed_program.c"] = {"printed": self._seed_line}
        return runs
