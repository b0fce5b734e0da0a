"""Starting the distributed step scripts in fresh processes, shared by the tests here.

Logical CPU devices and ``MultiWorkerMirroredStrategy`` must be set up before TensorFlow
starts, so each configuration runs a script in a process of its own, bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def worker_env(**extra):
    """The environment of a step process: this checkout first on the path, TF backend."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["KERAS_BACKEND"] = "tensorflow"
    env.update(extra)
    return env


def spawn(script, args, out, env):
    """Start ``script`` with ``args`` and the output path ``out``."""
    return subprocess.Popen(
        [sys.executable, str(script), *args, str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so a hang is killed whole
    )


def finish(proc, timeout):
    """Wait for ``proc``; on timeout kill its process group and fail with its output."""
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{proc.args} timed out after {timeout} s:\n{output[-4000:]}")
    assert proc.returncode == 0, f"{proc.args} failed:\n{output[-4000:]}"


def kill_running(procs):
    """Kill the process group of every process in ``procs`` still running."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def free_ports(n):
    """``n`` loopback ports free right now."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_workers(script, args, folder, timeout, num_workers=2):
    """``script args`` as ``num_workers`` MultiWorkerMirroredStrategy workers on loopback;
    returns each worker's JSON output, in worker order."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(num_workers)]}
    procs = []
    try:
        for index in range(num_workers):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            out = Path(folder) / f"worker{index}.json"
            procs.append((spawn(script, args, out, worker_env(TF_CONFIG=tf_config)), out))
        for proc, _ in procs:
            finish(proc, timeout)
    finally:
        kill_running([proc for proc, _ in procs])
    return [json.loads(out.read_text()) for _, out in procs]


def max_weight_difference(a, b):
    """The largest absolute difference between two lists of weight arrays."""
    return max(float(np.abs(np.array(x) - np.array(y)).max()) for x, y in zip(a, b, strict=True))
