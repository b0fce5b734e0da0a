"""What `tftriplet bench` prints: the machine it ran on, and the table of its results."""

from __future__ import annotations

import os

from tftriplet_cli.bench.kernel import kernel_note


def machine_description():
    """The machine in one line: architecture, CPU model, usable cores, load at the start,
    and the TensorFlow CPU allocator when it is set."""
    import platform

    cpus = os.cpu_count()
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = cpus
    try:
        load = os.getloadavg()
        load_text = f", load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} at start"
    except OSError:
        load_text = ""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        model = names[0] if names else ""
    except OSError:
        pass
    model = f" ({model})" if model else ""
    # TensorFlow's CPU allocator choice moves large-batch times by up to 3x (README).
    bfc = os.environ.get("TF_CPU_ALLOCATOR_USE_BFC")
    bfc_text = f", TF_CPU_ALLOCATOR_USE_BFC={bfc}" if bfc else ""
    return (
        f"{platform.machine()} {platform.system()}{model}, {affinity} usable CPU cores"
        f"{load_text}{bfc_text}"
    )


def format_table(results):
    """A plain-text table, with the speed-up of sorted over dense at equal batch size;
    where a `matmul` row was measured at the same batch size in the same backend, each
    step's time in multiples of it (CPU time: less sensitive to other load than wall time;
    the backends' matrix products differ in speed); and where a
    sorted row ran in a TensorFlow graph, the other backends' sorted rows in multiples of
    it (wall time, as a user sees it)."""
    dense_time = {
        r["batch_size"]: r["median_s"]
        for r in results
        if r["method"] == "dense" and r["status"] == "ok"
    }
    matmul_cpu = {
        (r["batch_size"], r["backend"]): r["median_cpu_s"]
        for r in results
        if r["method"] == "matmul" and r["status"] == "ok"
    }
    graph_time = {
        r["batch_size"]: r["median_s"] for r in results if r["status"] == "ok" and _tf_graph(r)
    }
    header = ("B", "method", "median", "cpu", "peak RSS", "load", "loss", "vs dense", "note")
    rows = []
    for r in results:
        if r["status"] != "ok":
            rows.append(
                (str(r["batch_size"]), _label(r, backend=False), "-", "-", "-", "-", "-", "-",
                 r["reason"])
            )
            continue
        speedup = "-"
        if r["method"] != "dense" and r["batch_size"] in dense_time:
            speedup = f"{dense_time[r['batch_size']] / r['median_s']:.1f}x"
        notes = [kernel_note(r)]
        if r.get("anchor_block"):
            notes.append(f"anchor blocks of {r['anchor_block']}")
        matmul = matmul_cpu.get((r["batch_size"], r["backend"]))
        if r["method"] != "matmul" and matmul:
            notes.append(f"{r['median_cpu_s'] / matmul:.1f}x matmul (cpu)")
        if r["method"] == "sorted" and not _tf_graph(r) and r["batch_size"] in graph_time:
            notes.append(f"{r['median_s'] / graph_time[r['batch_size']]:.2f}x the TF graph")
        load = r.get("load_average")
        rows.append((
            str(r["batch_size"]),
            _label(r),
            _fmt_seconds(r["median_s"]),
            f"{r['median_cpu_s']:.2f} s",
            f"{r['peak_rss_bytes'] / 1e9:.2f} GB",
            "-" if load is None else f"{load:.1f}",
            "-" if r.get("loss") is None else f"{r['loss']:.6f}",
            speedup,
            ", ".join(n for n in notes if n),
        ))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("-+-".join("-" * w for w in widths))
    for row in rows:
        lines.append(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _tf_graph(result):
    """Whether `result` is the sorted row that ran in a TensorFlow graph (no XLA, no
    memory): the one the other backends' sorted rows are compared with."""
    return (result["method"] == "sorted" and result["backend"] == "tensorflow"
            and not result.get("jit_compile") and not result.get("memory"))


def _label(result, backend=True):
    """The method's name in the table, with its memory, and its backend when it ran."""
    name = result["method"]
    if result.get("memory"):
        name += f", memory {result['memory']}"
    if not backend:
        return name
    if result["method"] == "pml":
        return "pml (torch)"
    xla = ", XLA" if result.get("jit_compile") and result["backend"] == "tensorflow" else ""
    return f"{name} ({result['backend']}{xla})"


def _fmt_seconds(seconds):
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
