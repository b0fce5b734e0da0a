"""`tftriplet demo --compare-memory`: the same training without and with a cross-batch
memory, seed by seed, and the held-out retrieval of both side by side.

Each run is a whole `run_demo`, in a folder of its own under `--out` (`seed0-no-memory`,
`seed0-memory1024`, ...) with its PNG and JSON. A seed's two runs differ only in the
memory: the same split, batches, initial weights and number of steps. Each number is
therefore the one `tftriplet demo --seed S` (with `--memory N` for the memory's run)
prints with the same options.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from tftriplet_cli.demo.options import DemoError, Settings
from tftriplet_cli.demo.run import run_demo

#: The metrics compared, as `run_demo`'s results name them, and as the table heads them.
METRICS = {"recall@1": "recall@1", "map@r": "MAP@R"}


def compare_memory(*, seeds=(0, 1, 2), print_fn=print, **options):
    """Train each seed without and with the memory of `options`; return the comparison.

    Prints a line a run, then a table of recall@1 and MAP@R on the held-out data after
    training: per seed, their mean and their sample standard deviation over the seeds,
    and the per-seed differences. Writes it to `<out>/comparison.json`.

    Args:
        seeds: the seeds, each trained twice.
        print_fn: called with each line printed.
        **options: the fields of `Settings` but `seed`; `memory_size` (at least 1) and
            `memory_warmup` are the memory's run's, the other run has none.

    Raises:
        DemoError: on options a comparison cannot run with, and as `run_demo` does.

    Example:
        ```python
        compare_memory(seeds=(0, 1, 2), split="classes", memory_size=1024)
        ```
    """
    start = time.perf_counter()
    settings = _check(seeds, options)
    runs = []
    for seed in seeds:
        for memory in (0, settings.memory_size):
            runs.append(_run(options, seed, memory, print_fn, header=not runs))
    comparison = summarise(runs, settings)
    for line in format_comparison(comparison):
        print_fn(line)
    comparison["seconds"] = round(time.perf_counter() - start, 2)
    path = os.path.join(settings.out, "comparison.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(comparison, f, indent=2)
    print_fn(f"\nwrote {path}; {len(runs)} runs in {comparison['seconds']:.1f} s")
    return comparison


def _check(seeds, options):
    """The `Settings` of the comparison, or a `DemoError` saying what cannot be compared."""
    if "seed" in options:
        raise DemoError("--compare-memory takes its seeds as seeds=(...), not seed=.")
    settings = Settings(**options)
    if settings.memory_size < 1:
        raise DemoError(
            f"--compare-memory needs a memory to compare with: give --memory N with N >= 1; "
            f"got --memory {settings.memory_size}."
        )
    if settings.tensorboard is not None:
        raise DemoError("--compare-memory writes no TensorBoard logs: drop --tensorboard.")
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise DemoError(f"--compare-memory needs distinct seeds; got {seeds}.")
    return settings


def _run(options, seed, memory, print_fn, header):
    """One `run_demo` of the comparison, in its own folder; returns its record. The first
    run's header lines (data, split, loss, batches) are printed, then one line a run."""
    name = f"seed{seed}-" + (f"memory{memory}" if memory else "no-memory")
    out = os.path.join(options.get("out", Settings.out), name)
    overrides = {"seed": seed, "out": out, "memory_size": memory}
    if not memory:
        overrides["memory_warmup"] = 0
    lines = []
    results = run_demo(print_fn=lines.append, **{**options, **overrides})
    if header:  # the lines before the retrieval table, which starts with a blank line
        for line in lines:
            if line.startswith("\n"):
                break
            print_fn(line)
    config = results["config"]
    print_fn(
        f"seed {seed}, {_name(memory, config['memory_warmup'])}: "
        + ", ".join(f"{head} {results['after'][key]:.3f}" for key, head in METRICS.items())
        + f" ({results['seconds']:.1f} s; {out})"
    )
    return {
        "seed": seed,
        "memory_size": memory,
        "memory_warmup": config["memory_warmup"],
        "steps": config["epochs"] * config["batches_per_epoch"],
        "memory": results["memory"],
        "input_features": results["input_features"],
        "before": results["before"],
        "after": results["after"],
        "out": out,
    }


def _name(memory, warmup):
    """A run's name in the printed lines."""
    if not memory:
        return "no memory"
    return f"memory {memory}" + (f" (warm-up {warmup} steps)" if warmup else "")


def summarise(runs, settings):
    """The comparison's record: the runs, and per metric and memory size the values by
    seed, their mean and sample standard deviation, and the paired differences."""
    summary = {}
    for key in METRICS:
        by_memory = {
            memory: [r["after"][key] for r in runs if r["memory_size"] == memory]
            for memory in (0, settings.memory_size)
        }
        values = by_memory[settings.memory_size]
        summary[key] = {
            "no_memory": _stats(by_memory[0]),
            "memory": _stats(values),
            "difference": _stats(np.subtract(values, by_memory[0]).tolist()),
        }
    seeds = [r["seed"] for r in runs if not r["memory_size"]]
    baseline = {key: float(np.mean([r["input_features"][key] for r in runs])) for key in METRICS}
    return {
        "memory_size": settings.memory_size,
        "memory_warmup": settings.memory_warmup,
        "seeds": seeds,
        "steps": runs[0]["steps"],
        "metrics": summary,
        "input_features": baseline,
        "runs": runs,
    }


def _stats(values):
    """Per-seed values, their mean and sample standard deviation (0 for one value)."""
    values = [float(v) for v in values]
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"per_seed": values, "mean": float(np.mean(values)), "std": spread}


def format_comparison(comparison):
    """The printed table of a `summarise` record: a row a seed, the mean, the sample
    standard deviation, then the paired differences and the network-free baseline."""
    metrics = comparison["metrics"]
    cell = "{:>9}"
    lines = [
        "",
        f"held-out retrieval after training ({comparison['steps']} steps each), without and "
        f"with the {_name(comparison['memory_size'], comparison['memory_warmup'])}:",
        (" " * 6 + "".join(f"  {head:^20}" for head in METRICS.values())).rstrip(),
        f"{'seed':<6}" + "".join(
            "  " + cell.format("no memory") + "  " + cell.format("memory") for _ in METRICS
        ),
    ]
    columns = [metrics[key][which] for key in METRICS for which in ("no_memory", "memory")]
    rows = [(str(seed), i) for i, seed in enumerate(comparison["seeds"])]
    for name, index in [*rows, ("mean", "mean"), ("std", "std")]:
        values = [c["per_seed"][index] if isinstance(index, int) else c[index] for c in columns]
        lines.append(f"{name:<6}" + "".join(f"  {v:>9.3f}" for v in values))
    lines.append("std: the sample standard deviation over the seeds.")
    for key, head in METRICS.items():
        diff = metrics[key]["difference"]
        lines.append(
            f"{head}, memory minus no memory: "
            + ", ".join(f"{d:+.3f}" for d in diff["per_seed"])
            + f" (mean {diff['mean']:+.3f}, std {diff['std']:.3f})"
        )
    baseline = comparison["input_features"]
    lines.append(
        "input features (no network, mean over the seeds): "
        + ", ".join(f"{head} {baseline[key]:.3f}" for key, head in METRICS.items())
    )
    return lines
