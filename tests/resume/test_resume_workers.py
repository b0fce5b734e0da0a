"""Two MultiWorkerMirroredStrategy workers on loopback: worker 1 is killed with SIGKILL in
the middle of an epoch, the chief stalls at the next step (it waits for worker 1) and is
killed too; both are started again with the same commands and end with the weights of an
uninterrupted two-worker run (tests/resume/worker_run.py: a custom loop, since Keras 3's
fit does not run under this strategy)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import pytest
from kill_points import Run
from processes import free_ports, kill_running, max_weight_difference, worker_env

SCRIPT = Path(__file__).with_name("worker_run.py")
TIMEOUT = 300
TOLERANCE = 1e-6
#: Worker 1 pauses after step 8 (epoch 1, step 3); the last backup was at step 6.
KILL_AT, RESUMED_AT = 8, 6

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="tf.distribute needs the TF backend"
)


def start_workers(folder, ports, pause_at=None):
    """The two workers of one cluster, writing their backup in ``folder``."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    runs = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        extra = {"TF_CONFIG": json.dumps(config)}
        if pause_at is not None and index == 1:
            extra["TFTRIPLET_PAUSE_AT"] = str(pause_at)
        out = folder / f"worker{index}.json"
        runs.append((Run(SCRIPT, [str(folder / "backup")], out, worker_env(**extra)), out))
    return runs


def test_two_workers_killed_mid_epoch_resume_to_the_uninterrupted_weights(tmp_path):
    (tmp_path / "reference").mkdir()
    (tmp_path / "resumed").mkdir()
    ports = free_ports(4)
    started = []
    try:
        reference = start_workers(tmp_path / "reference", ports[:2])
        started += [run for run, _ in reference]
        clock = time.perf_counter()
        killed = start_workers(tmp_path / "resumed", ports[2:], pause_at=KILL_AT)
        started += [run for run, _ in killed]
        (chief, _), (worker, _) = killed
        worker.wait_for(f"PAUSED {KILL_AT}", TIMEOUT)
        chief.wait_for(f"STEP {KILL_AT}", TIMEOUT)  # backed up to here; now waits for worker 1
        worker.kill()
        chief.kill()
        resumed = start_workers(tmp_path / "resumed", ports[2:])  # the same commands again
        started += [run for run, _ in resumed]
        for run, _ in resumed + reference:
            run.finish(TIMEOUT)
        seconds = time.perf_counter() - clock
    finally:
        kill_running([run.proc for run in started])
    expected = json.loads(reference[0][1].read_text())
    for index, (run, out) in enumerate(resumed):
        assert run.value("RESTORED") == RESUMED_AT, index
        result = json.loads(out.read_text())
        assert result["replicas"] == 2
        delta = max_weight_difference(result["weights"], expected["weights"])
        print(f"2 workers, worker 1 killed at step {KILL_AT}: worker {index} max|dw| = {delta:.3g}")
        assert delta <= TOLERANCE
    assert max_weight_difference(expected["weights"], json.loads(reference[1][1].read_text())[
        "weights"]) == 0.0, "the two workers of the uninterrupted run agree"
    assert not (tmp_path / "resumed" / "backup").exists(), "the chief deletes the backup at the end"
    print(f"killed and resumed two-worker run: {seconds:.0f} s")
