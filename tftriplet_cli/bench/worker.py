"""The bench's measurement child: `python -m tftriplet_cli.bench.worker SPEC` runs one
measurement (`measure(**json.loads(SPEC))`) and prints its result as one JSON line.

The library is imported first, as in every measurement, so that each process's peak memory
includes Keras and its backend alike.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import tftriplet  # noqa: F401
from tftriplet_cli.bench.kernel import kernel_columns
from tftriplet_cli.bench.memory import LOSS_METHODS, loss_step
from tftriplet_cli.bench.methods import configure_replicas, make_inputs, method_step


def measure(method, batch_size, dim=128, per_class=8, repeats=3, margin=0.2,
            backend="tensorflow", jit=False, row_sort="auto", replicas=2, memory=0):
    """One measurement in this process (the worker side). Returns a result dict.

    A `method` of `tftriplet_cli.bench.memory.LOSS_METHODS` is a loss class, whose
    cross-batch memory of `memory` samples (none for 0) is full before the first step."""
    import resource

    if method == "cross_replica":
        configure_replicas(replicas)
    if method in LOSS_METHODS:
        step, sync = loss_step(method, backend, memory, batch_size, dim, per_class, margin,
                                 jit, steps=repeats + 1)
        kernel, blocks = None, None
    else:
        labels, embeddings = make_inputs(batch_size, dim, per_class)
        step, sync, backend = method_step(
            method, backend, labels, embeddings, margin, jit, row_sort, replicas
        )
        kernel, blocks = kernel_columns(method, batch_size, per_class, backend, jit, row_sort,
                                        replicas)
    walls, cpus, result = time_calls(step, sync, repeats)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "load_average": load,
        "method": method,
        "backend": backend,
        "batch_size": batch_size,
        "dim": dim,
        "per_class": per_class,
        "repeats": repeats,
        "jit_compile": bool(jit),
        "memory": memory,
        "kernel": kernel,
        "anchor_block": blocks,
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "median_cpu_s": statistics.median(cpus),
        "peak_rss_bytes": peak_kib * 1024,
        "loss": float(result[0]) if method != "matmul" else None,
        "status": "ok",
    }


def time_calls(step, sync, repeats):
    """Run `step` once to trace, compile and warm up, then `repeats` times; return the wall
    and CPU seconds of each timed call and the first call's result (a step with a memory
    changes the memory: the first one's loss is that of the inputs as they were made)."""
    first = step()  # trace / compile / warm up
    sync(first)
    walls, cpus = [], []
    for _ in range(repeats):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sync(step())
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    return walls, cpus, first


def main(argv):
    """Run the measurement `argv[0]` (a JSON object of `measure`'s arguments)."""
    if len(argv) != 1:
        return "usage: python -m tftriplet_cli.bench.worker SPEC  (started by tftriplet bench)"
    print(json.dumps(measure(**json.loads(argv[0]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
