"""The seed's C program itself, compiled with the system C compiler, against our outputs."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tftriplet_conformance import reference

ROOT = Path(__file__).resolve().parents[2]
SEED_SOURCE = ROOT / "conformance" / "c" / "seed_program.c"
SEED_LINE = "The triplet loss is 0.270146 with positives 0.668605"


@pytest.fixture(scope="module")
def seed_binary(tmp_path_factory):
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler on this machine (set CC)")
    out = tmp_path_factory.mktemp("seed") / "seed_program"
    subprocess.run([cc, "-O2", str(SEED_SOURCE), "-o", str(out), "-lm"], check=True)
    return out


def test_seed_program_prints_the_seed_line(seed_binary):
    printed = subprocess.run([seed_binary], capture_output=True, text=True, check=True).stdout
    assert printed.strip() == SEED_LINE


def test_seed_program_with_full_precision_agrees_with_reference(seed_binary, tmp_path, seed_case):
    # The same program with "%f" widened to "%.17g": the C doubles at full precision.
    source = SEED_SOURCE.read_text().replace(
        '"The triplet loss is %f with positives %f \\n"', '"%.17g %.17g\\n"'
    )
    assert "%.17g" in source
    path = tmp_path / "seed_full.c"
    path.write_text(source)
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    subprocess.run([cc, "-O2", str(path), "-o", str(tmp_path / "full"), "-lm"], check=True)
    printed = subprocess.run([tmp_path / "full"], capture_output=True, text=True, check=True)
    loss, fraction = (float(v) for v in printed.stdout.split())
    labels, embeddings = seed_case
    ref = reference.batch_all(labels, embeddings, 0.2)
    np.testing.assert_allclose(loss, ref["loss"], rtol=1e-13)
    np.testing.assert_allclose(fraction, ref["fraction_positive"], rtol=1e-13)


def test_cli_prints_the_seed_line():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-m", "tftriplet", "seed"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
    )
    assert done.stdout.strip() == SEED_LINE
