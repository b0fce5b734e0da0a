"""A training run killed with SIGKILL and started again with the same command ends with the
weights of the uninterrupted run, under each Keras backend and for both samplers.

Each chain of processes runs tests/resume/train_run.py (4 epochs of 5 steps, Adam, a
backup every 3 steps): the first is killed during the first epoch before any backup, the
second mid-epoch between two backups, the third right after a backup; the fourth runs to
the end. Every restart is checked against an uninterrupted run of the same command that
records its weights after every step: the step the restart resumes from, the weights it
restores there, and at the end the final weights and RetrievalEvaluation's history of
every epoch. Also: a run killed while writing a backup resumes from the one before,
epoch backups (save_freq="epoch") resume at the epoch boundary, and a loss with a
cross-batch memory ends with the uninterrupted weights and memory. The measured
differences are printed (pytest -s).
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pytest
from kill_points import Run, kill_at
from processes import kill_running, worker_env

SCRIPT = Path(__file__).with_name("train_run.py")
TIMEOUT = 300
#: The weights of a restored run equal the uninterrupted run's within this (the backends
#: are deterministic on CPU, so they are expected to be equal bit for bit).
TOLERANCE = 1e-6
#: (what, the step a run pauses at and is killed, the step its restart resumes from).
#: Backups are due at steps 3, 6, 9, 12, 15 and 18; epochs are 5 steps long.
CHAIN = [
    ("first epoch, before any backup", 2, 0),
    ("mid-epoch, between backups", 8, 6),
    ("right after a backup", 12, 12),
]
BACKENDS = ["tensorflow", "jax", "torch"]
SAMPLERS = ["pkbatches", "dataset"]


def _skip_without(backend):
    needed = {"tensorflow", backend}  # pk_dataset and the TF backend need TensorFlow
    missing = [m for m in sorted(needed) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (the tensorflow tox env has them)")


def start(backend, sampler, save_freq, folder, name, **env):
    out = folder / f"{name}.json"
    environment = worker_env(KERAS_BACKEND=backend, **{k: str(v) for k, v in env.items()})
    args = [sampler, str(save_freq), str(folder / "backup")]
    return Run(SCRIPT, args, out, environment), out


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Uninterrupted runs that record the weights after every step, started on demand
    (in parallel with the test that asks) and read when the test needs them."""
    started = {}

    def reference(backend, sampler, **env):
        key = (backend, sampler, *sorted(env.items()))
        if key not in started:
            folder = tmp_path_factory.mktemp(f"reference-{backend}-{sampler}")
            started[key] = start(
                backend, sampler, 3, folder, "run", TFTRIPLET_EVERY_STEP="1", **env
            )
        return started[key]

    yield reference
    kill_running([run.proc for run, _ in started.values()])


def result_of(reference):
    run, out = reference
    if run.proc.returncode is None:
        run.finish(TIMEOUT)
    return json.loads(out.read_text())


def difference(a, b):
    return max(float(np.abs(np.array(x) - np.array(y)).max()) for x, y in zip(a, b, strict=True))


def weights_at(reference, step):
    """The uninterrupted run's weights after ``step`` steps (0: the initial weights)."""
    return reference["restored"]["weights"] if step == 0 else reference["steps"][str(step)]


def check_end(reference, out, label):
    final = json.loads(out.read_text())
    moved = difference(reference["weights"], weights_at(reference, 0))
    assert moved > 1e-2, "training must move the weights for the comparison to mean anything"
    delta = difference(final["weights"], reference["weights"])
    print(f"{label}: final max|dw| = {delta:.3g}")
    assert delta <= TOLERANCE, delta
    assert final["history"].keys() == reference["history"].keys() == {"0", "1", "2", "3"}
    for epoch, results in reference["history"].items():
        for key, value in results.items():
            assert final["history"][epoch][key] == pytest.approx(value, abs=1e-12), (epoch, key)
    assert not final["backup_left"], "fit deletes the backup when it ends"


def check_restart(reference, out, step, label):
    """The restart that wrote ``out`` resumed at ``step`` with the uninterrupted weights."""
    restored = json.loads(Path(f"{out}.restored.json").read_text())
    assert restored["step"] == step, (label, restored["step"], step)
    delta = difference(restored["weights"], weights_at(reference, step))
    print(f"{label}: restored step {step}, max|dw| = {delta:.3g}")
    assert delta <= TOLERANCE, (label, delta)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_three_times_ends_with_the_uninterrupted_weights(
    backend, sampler, references, tmp_path
):
    _skip_without(backend)
    reference_run = references(backend, sampler)
    clock = time.perf_counter()
    outs = []
    for index, (_, pause_at, _) in enumerate(CHAIN):
        run, out = start(backend, sampler, 3, tmp_path, f"run{index}", TFTRIPLET_PAUSE_AT=pause_at)
        kill_at(run, pause_at, TIMEOUT)
        outs.append(out)
    run, out = start(backend, sampler, 3, tmp_path, "last")
    run.finish(TIMEOUT)
    seconds = time.perf_counter() - clock
    reference = result_of(reference_run)
    check_restart(reference, outs[0], 0, f"{backend}/{sampler}: first run")
    # Run i + 1 resumes where run i was killed.
    for (what, pause_at, resumed), restart in zip(CHAIN, outs[1:] + [out], strict=True):
        label = f"{backend}/{sampler}: killed at step {pause_at} ({what})"
        check_restart(reference, restart, resumed, label)
    check_end(reference, out, f"{backend}/{sampler} ({seconds:.0f} s for 4 runs)")


def test_killed_while_writing_a_backup_resumes_from_the_one_before(references, tmp_path):
    """Killed in its third backup (step 9), between writing the new generation's files and
    naming it in latest.json: the restart resumes from the backup of step 6."""
    _skip_without("tensorflow")
    reference_run = references("tensorflow", "pkbatches")
    run, _ = start("tensorflow", "pkbatches", 3, tmp_path, "run0", TFTRIPLET_PAUSE_IN_BACKUP=3)
    run.wait_for("PAUSED IN BACKUP", TIMEOUT)
    run.kill()
    assert (tmp_path / "backup" / "generation-3").is_dir(), "the unnamed generation is there"
    run, out = start("tensorflow", "pkbatches", 3, tmp_path, "last")
    run.finish(TIMEOUT)
    reference = result_of(reference_run)
    check_restart(reference, out, 6, "tensorflow/pkbatches: killed while writing a backup")
    check_end(reference, out, "tensorflow/pkbatches killed while writing a backup")


@pytest.mark.parametrize("backend", BACKENDS)
def test_epoch_backups_resume_at_the_epoch_boundary(backend, references, tmp_path):
    """save_freq="epoch": killed mid-epoch 2 (step 12), the restart resumes at step 10."""
    _skip_without(backend)
    reference_run = references(backend, "pkbatches")
    run, _ = start(backend, "pkbatches", "epoch", tmp_path, "run0", TFTRIPLET_PAUSE_AT=12)
    kill_at(run, 12, TIMEOUT)
    run, out = start(backend, "pkbatches", "epoch", tmp_path, "last")
    run.finish(TIMEOUT)
    reference = result_of(reference_run)
    check_restart(reference, out, 10, f"{backend}/pkbatches, epoch backups: killed at step 12")
    check_end(reference, out, f"{backend}/pkbatches, epoch backups")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_memory_comes_back_and_the_run_ends_with_the_uninterrupted_weights(
    backend, references, tmp_path
):
    """A memory of 8 samples (2 warm-up steps): killed mid-epoch between backups (step 8,
    resumed at 6), the restart ends with the uninterrupted weights and memory, and the
    memory is in effect (a run without it ends elsewhere)."""
    _skip_without(backend)
    reference_run = references(backend, "pkbatches", TFTRIPLET_MEMORY=8)
    without = references(backend, "pkbatches")
    run, _ = start(backend, "pkbatches", 3, tmp_path, "run0", TFTRIPLET_PAUSE_AT=8,
                   TFTRIPLET_MEMORY=8)
    kill_at(run, 8, TIMEOUT)
    run, out = start(backend, "pkbatches", 3, tmp_path, "last", TFTRIPLET_MEMORY=8)
    run.finish(TIMEOUT)
    reference = result_of(reference_run)
    check_restart(reference, out, 6, f"{backend} with a memory: killed at step 8")
    check_end(reference, out, f"{backend} with a memory")
    final = json.loads(out.read_text())["memory"]
    assert final["labels"] == reference["memory"]["labels"] and final["steps"] == 20
    assert difference([final["embeddings"]], [reference["memory"]["embeddings"]]) <= TOLERANCE
    assert difference(reference["weights"], result_of(without)["weights"]) > 1e-3
