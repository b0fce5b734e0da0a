"""The `tftriplet bench` command: one fresh subprocess a measurement, and the rows it skips
(estimated too large for `--max-gb`, pytorch-metric-learning missing, failed, timed out)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tftriplet_cli.bench.memory import LOSS_METHODS, MEMORY_CLASSES
from tftriplet_cli.bench.options import (
    BACKENDS_PRESET,
    LARGE_PRESET,
    MEMORY_PRESET,
    add_arguments,
)
from tftriplet_cli.bench.report import format_table, machine_description


def add_parser(subparsers):
    """Add the `bench` subcommand to the `tftriplet` command line."""
    parser = subparsers.add_parser(
        "bench", help="time and peak memory of loss + gradient: dense, sorted, pml"
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def rows_of(args):
    """The measurements `args` asks for: `(batch_size, method, backend, xla, memory)` rows
    (`memory` 0: none)."""
    if args.preset == "backends":
        return [(*row, 0) for row in BACKENDS_PRESET]
    if args.preset == "memory":
        return [(b, m, args.backend, args.xla, n) for b, m, n in MEMORY_PRESET]
    if args.preset == "large":
        triples = [(b, m, 0) for b, m in LARGE_PRESET]
    else:
        triples = [(b, m, n) for b in args.sizes for m in args.methods
                   for n in ((args.memory or [0]) if m in LOSS_METHODS else [0])]
    return [(b, m, args.backend, args.xla, n) for b, m, n in triples]


def run(args):
    """The `tftriplet bench` command: measure every row, print the table, write the JSON."""
    error = memory_error(args)
    if error:
        print(f"tftriplet bench: error: {error}", file=sys.stderr)
        return 2
    results = []
    machine = machine_description()
    rows = rows_of(args)
    print(
        f"loss + gradient (batch-all but where named), float32, D={args.dim}, "
        f"{args.per_class} per class, margin {args.margin:g}, median of {args.repeats}; "
        f"{machine}",
        flush=True,
    )
    if any(row[-1] for row in rows):
        print(
            "memory rows: one training step with a full cross-batch memory of N samples "
            f"(P x K batches of {args.per_class} per class, classes drawn from "
            f"{MEMORY_CLASSES}); the batch then enters the memory",
            flush=True,
        )
    for batch_size, method, backend, xla, memory in rows:
        result = run_one(method, batch_size, args, backend, xla, memory)
        results.append(result)
        if args.verbose:
            print(json.dumps(result), flush=True)
    print(format_table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": machine, "results": results}, f, indent=2)
    return 0


def memory_error(args):
    """Why `--memory` cannot apply to the rows asked for, or None."""
    if not args.memory:
        return None
    if args.preset:
        return f"--memory takes its rows from --sizes and --methods, not --preset {args.preset}."
    others = [m for m in args.methods if m not in LOSS_METHODS]
    if others:
        return (f"--memory applies to the losses {', '.join(LOSS_METHODS)}; got --methods "
                f"{','.join(args.methods)} ({', '.join(others)} take no memory).")
    return None


def run_one(method, batch_size, args, backend, xla, memory=0):
    """Run one measurement in a fresh subprocess (with `backend` and `xla`, and a full
    memory of `memory` samples); returns its result dict."""
    need = None
    if method == "dense":
        need = dense_bytes_estimate(batch_size)
    if method == "pml":
        if not pml_installed():
            return skipped(method, batch_size, "pytorch-metric-learning is not installed")
        need = pml_bytes_estimate(batch_size, args.per_class)
    if need is not None and need > args.max_gb * 1e9:
        return skipped(
            method, batch_size, f"would need {need / 1e9:,.0f} GB (limit {args.max_gb:g} GB)"
        )
    worker_args = {
        "method": method,
        "batch_size": batch_size,
        "dim": args.dim,
        "per_class": args.per_class,
        "repeats": args.repeats,
        "margin": args.margin,
        "backend": backend,
        "jit": xla,
        "row_sort": args.row_sort,
        "replicas": args.replicas,
        "memory": memory,
    }
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["KERAS_BACKEND"] = "torch" if method == "pml" else backend
    cmd = [sys.executable, "-m", "tftriplet_cli.bench.worker", json.dumps(worker_args)]
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=args.timeout
        )
    except subprocess.TimeoutExpired:
        return skipped(method, batch_size, f"timed out after {args.timeout:g} s", memory)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return skipped(method, batch_size, f"failed (exit {proc.returncode}): {tail[0][:200]}",
                       memory)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def skipped(method, batch_size, reason, memory=0):
    """The result of a row that was not measured, with the reason."""
    return {"method": method, "batch_size": batch_size, "memory": memory, "status": "skipped",
            "reason": reason}


def dense_bytes_estimate(batch_size):
    """Peak memory of the dense form: at most three live `B^3` float32 tensors.

    Measured (README section "Large batches", TensorFlow, loss + gradient, peak RSS with
    about 0.75 GB of imported framework): 1.85 GB at B=512, 4.44 GB at B=768, i.e. about two
    `B^3` tensors at the peak; three leave room for the allocator.
    """
    return 3 * 4 * batch_size**3


def pml_bytes_estimate(batch_size, per_class):
    """Peak memory of pytorch-metric-learning's all-triplets loss: a `B^3` uint8 mask and
    about 48 bytes per valid triple (three int64 index vectors, built twice)."""
    positives = max(per_class - 1, 0)
    triples = batch_size * positives * max(batch_size - per_class, 0)
    return batch_size**3 + 48 * triples


def pml_installed():
    """Whether pytorch-metric-learning can be imported."""
    try:
        import importlib.util

        return importlib.util.find_spec("pytorch_metric_learning") is not None
    except (ImportError, ValueError):
        return False
