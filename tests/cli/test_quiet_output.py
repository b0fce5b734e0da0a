"""The commands print their own output only: TensorFlow's start-up lines are dropped unless
``--verbose``; the subprocesses they start inherit the quiet environment."""

import os
import subprocess
import sys

import keras
import pytest

import tftriplet
from tftriplet_cli import _startup

# Lines as TensorFlow 2.21 (tensorflow and tensorflow-cpu wheels) wrote them to stderr at
# import on a CPU-only machine, copied from a run of `python -c "import tensorflow"`.
START_UP_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1795959136.825400    5557 port.cc:153] oneDNN custom operations are on. You "
    "may see slightly different numerical results due to floating-point round-off errors.\n",
    "I0000 00:00:1795959137.046539    5557 cpu_feature_guard.cc:227] This TensorFlow binary "
    "is optimized to use available CPU instructions in performance-critical operations.\n",
    "To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other "
    "operations, rebuild TensorFlow with the appropriate compiler flags.\n",
    "I0000 00:00:1795959610.655360   12206 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.\n",
    "E0000 00:00:1795959617.082227   12206 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n",
]
OTHER_LINES = [
    "Traceback (most recent call last):\n",
    "E0000 00:00:1795959617.082227   12206 bfc_allocator.cc:1] Allocator ran out of memory\n",
    "tftriplet demo: error: --data x.npz: no such file.\n",
    "Epoch 1/15\n",
]


def test_start_up_line_pattern():
    assert all(_startup.START_UP_LINE.match(line) for line in START_UP_LINES)
    assert not any(_startup.START_UP_LINE.match(line) for line in OTHER_LINES)


def test_filter_drops_start_up_lines_written_to_file_descriptor_2(capfd):
    with _startup.start_up_lines_filtered():
        for line in START_UP_LINES + OTHER_LINES:
            os.write(2, line.encode())  # as C++ writes: below Python's sys.stderr
    assert capfd.readouterr().err == "".join(OTHER_LINES)


def test_quiet_environment_is_set_unless_verbose(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert _startup.quiet_framework_logs(verbose=True) is False
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    assert _startup.quiet_framework_logs() is True
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")  # the user's own setting wins
    _startup.quiet_framework_logs()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"


def test_conformance_runner_quiets_the_workers_it_starts(monkeypatch, capsys):
    from tftriplet_conformance.__main__ import main

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert main(["--backend", "numpy", "--fixture", "all_distinct_labels"]) == 0
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert "1 ok" in capsys.readouterr().out


# The command's two entries: `python -m tftriplet_cli`, and the console script `tftriplet`
# that pip installs next to the interpreter (in tox's environments; not in a bare checkout).
ENTRIES = {
    "python -m tftriplet_cli": [sys.executable, "-m", "tftriplet_cli"],
    "console script": [os.path.join(os.path.dirname(sys.executable), "tftriplet")],
}


def run_command(entry, *args):
    command = ENTRIES[entry]
    if not os.path.isfile(command[0]):
        pytest.skip(f"{command[0]} is not installed (pip install . installs it; tox does)")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",)}
    root = os.path.dirname(os.path.dirname(os.path.abspath(tftriplet.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="the start-up lines are TensorFlow's"
)
@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_command_prints_its_own_output_only_and_verbose_brings_the_logs_back(entry):
    quiet = run_command(entry, "seed")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.startswith("The triplet loss is 0.270146")
    assert quiet.stderr == ""
    verbose = run_command(entry, "seed", "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert verbose.stdout == quiet.stdout
    lines = verbose.stderr.splitlines(keepends=True)
    assert any(_startup.START_UP_LINE.match(line) for line in lines), verbose.stderr
