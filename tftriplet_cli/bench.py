"""``tftriplet bench``: time and peak memory of batch-all loss + gradient, per method.

Each measurement (one method at one batch size) runs in a fresh Python subprocess, so that
its peak resident memory (``getrusage(RUSAGE_SELF).ru_maxrss``) is its own and the numbers
of different methods never mix. The child builds the inputs, runs loss + gradient once to
trace/compile and warm up, then ``repeats`` times, and reports the median wall time, the
median CPU time of the process (user + system: less sensitive than wall time to other load
on a shared machine) and its peak RSS, plus the loss value so that methods can be checked
against each other.

Methods:
    ``dense``: the seed's ``(B, B, B)`` form (``method="dense"``), Keras backend of choice.
    ``sorted``: the exact ``O(B^2)``-memory form (``method="sorted"``).
    ``pml``: pytorch-metric-learning's ``TripletMarginLoss`` over all triplets (no miner,
        ``triplets_per_anchor="all"``), reducer ``AvgNonZeroReducer`` (the mean over the
        positive hinges, the seed's denominator), ``LpDistance(p=2, power=1,
        normalize_embeddings=False)`` (plain Euclidean, as here), margin as given. It
        materialises a ``B^3`` mask and the indices of every valid triple.
    ``matmul``: not a loss: one ``B x B x D`` product ``e @ e^T`` (no gradient), the floor
        a batch-all step is compared with (its distance matrix alone costs one).
    ``cross_replica``: ``BatchAllTripletLoss(cross_replica=True)`` under
        ``tf.distribute.MirroredStrategy`` over ``--replicas`` logical CPU devices (set up
        in the worker before TensorFlow starts), the global batch ``B`` split evenly: one
        step of every replica's loss share and its gradient (TensorFlow only).

``--preset large`` runs the large-batch rows: the matmul and sorted at B=8192, sorted at
B=32768, and sorted against cross_replica at B=4096.

Inputs: ``B`` embeddings of dimension ``D`` drawn from N(0, 1/D) (fixed seed), labels with
``per_class`` samples per class in a shuffled order (the P x K batches of metric learning).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

DEFAULT_SIZES = (32, 128, 512, 768, 2048, 8192)
DEFAULT_METHODS = ("dense", "sorted", "pml")
EXTRA_METHODS = ("matmul", "cross_replica")

#: ``--preset large``: (batch size, method) rows, each in its own process.
LARGE_PRESET = (
    (8192, "matmul"),
    (8192, "sorted"),
    (32768, "sorted"),
    (4096, "sorted"),
    (4096, "cross_replica"),
)
BACKENDS = ("tensorflow", "jax", "torch")


def dense_bytes_estimate(batch_size):
    """Peak memory of the dense form: at most three live ``B^3`` float32 tensors.

    Measured (README section "Large batches", TensorFlow, loss + gradient, peak RSS with
    about 0.75 GB of imported framework): 1.85 GB at B=512, 4.44 GB at B=768, i.e. about two
    ``B^3`` tensors at the peak; three leave room for the allocator.
    """
    return 3 * 4 * batch_size**3


def pml_bytes_estimate(batch_size, per_class):
    """Peak memory of pytorch-metric-learning's all-triplets loss: a ``B^3`` uint8 mask and
    about 48 bytes per valid triple (three int64 index vectors, built twice)."""
    positives = max(per_class - 1, 0)
    triples = batch_size * positives * max(batch_size - per_class, 0)
    return batch_size**3 + 48 * triples


def make_inputs(batch_size, dim, per_class, seed=0):
    """Float32 embeddings ``(B, D)`` and int32 labels with ``per_class`` samples a class."""
    import numpy as np

    rng = np.random.default_rng(seed)
    embeddings = (rng.standard_normal((batch_size, dim)) / np.sqrt(dim)).astype("float32")
    labels = (np.arange(batch_size) // max(per_class, 1)).astype("int32")
    rng.shuffle(labels)
    return labels, embeddings


def _time_calls(step, sync, repeats):
    import time

    step_result = step()  # trace / compile / warm up
    sync(step_result)
    walls, cpus = [], []
    for _ in range(repeats):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        step_result = step()
        sync(step_result)
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    return walls, cpus, step_result


def _keras_step(method, backend, labels, embeddings, margin, jit, row_sort="auto"):
    """A zero-argument loss + gradient step for the Keras backend in this process."""
    from tftriplet import batch_all_triplet_loss
    from tftriplet.inputs import standardize_inputs
    from tftriplet.losses.batch_all_sorted import batch_all_sorted

    def loss_fn(y, x):
        if method == "sorted" and row_sort != "auto":
            y, x = standardize_inputs(y, x)
            return batch_all_sorted(y, x, margin, squared=False, row_sort=row_sort)["loss"]
        return batch_all_triplet_loss(y, x, margin=margin, method=method)[0]

    if backend == "tensorflow":
        import tensorflow as tf

        y, x = tf.constant(labels), tf.constant(embeddings)

        @tf.function(jit_compile=jit)
        def step():
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = loss_fn(y, x)
            return loss, tape.gradient(loss, x)

        return step, lambda r: float(r[0]) + float(r[1][0, 0])
    if backend == "jax":
        import jax

        fn = jax.jit(jax.value_and_grad(loss_fn, argnums=1))
        y, x = jax.numpy.asarray(labels), jax.numpy.asarray(embeddings)
        return (lambda: fn(y, x)), lambda r: float(r[0]) + float(r[1][0, 0])
    import torch

    return _torch_step(loss_fn, torch.as_tensor(labels), embeddings)


def _torch_step(loss_fn, y, embeddings):
    """A loss + gradient step through torch autograd, and how to force its result."""
    import torch

    x = torch.as_tensor(embeddings).requires_grad_(True)

    def step():
        x.grad = None
        loss = loss_fn(y, x)
        loss.backward()
        return loss, x.grad

    return step, lambda r: float(r[0]) + float(r[1][0, 0])


def _pml_step(labels, embeddings, margin):
    import torch
    from pytorch_metric_learning import distances, losses, reducers

    loss_obj = losses.TripletMarginLoss(
        margin=margin,
        distance=distances.LpDistance(p=2, power=1, normalize_embeddings=False),
        reducer=reducers.AvgNonZeroReducer(),
        triplets_per_anchor="all",
    )
    # pml takes (embeddings, labels), the reverse of a Keras loss
    return _torch_step(lambda y, x: loss_obj(x, y), torch.as_tensor(labels).long(), embeddings)


def sorted_kernel(row_sort, batch_size, per_class, backend, jit):
    """Which of the sorted form's two counting kernels a bench step runs ("positives" or
    "merged"), as ``choose_row_sort`` decides it. Under XLA or ``jax.jit`` (the bench jits
    every JAX step, labels included) the class sizes are unknown when the step is traced."""
    from tftriplet.losses.batch_all_sorted import choose_row_sort

    compiled = jit or backend == "jax"
    k = None if compiled else per_class - 1
    return choose_row_sort(row_sort, batch_size, k)[0]


def _matmul_step(embeddings, backend):
    """``e @ e^T`` alone, in the backend's compiled or graph form."""
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.constant(embeddings)
        step = tf.function(lambda: tf.matmul(x, x, transpose_b=True))
    elif backend == "jax":
        import jax

        x = jax.numpy.asarray(embeddings)
        fn = jax.jit(lambda x: x @ x.T)
        step = lambda: fn(x)  # noqa: E731
    else:
        import torch

        x = torch.as_tensor(embeddings)
        step = lambda: x @ x.T  # noqa: E731
    return step, lambda r: float(r[0, 0]) * 0.0


def _cross_replica_step(labels, embeddings, margin, replicas):
    """One ``MirroredStrategy`` step of ``BatchAllTripletLoss(cross_replica=True)``: every
    replica's loss share and its gradient; returns the summed loss (the global-batch loss).
    The logical devices must exist already (:func:`_configure_replicas`)."""
    import tensorflow as tf

    import tftriplet

    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:replicas]
    strategy = tf.distribute.MirroredStrategy(devices)
    loss_fn = tftriplet.BatchAllTripletLoss(margin=margin, cross_replica=True)
    b = len(labels)
    bounds = [b * r // replicas for r in range(replicas + 1)]

    def local(context):
        r = context.replica_id_in_sync_group
        lo, hi = bounds[r], bounds[r + 1]
        return tf.constant(labels[lo:hi]), tf.constant(embeddings[lo:hi])

    y = strategy.experimental_distribute_values_from_function(lambda c: local(c)[0])
    x = strategy.experimental_distribute_values_from_function(lambda c: local(c)[1])

    def replica_step(y, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = loss_fn(y, x)
        return loss, tape.gradient(loss, x)

    @tf.function
    def step():
        loss, grad = strategy.run(replica_step, args=(y, x))
        total = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        return total, strategy.experimental_local_results(grad)[0]

    return step, lambda r: float(r[0]) + float(r[1][0, 0])


def _configure_replicas(replicas):
    """Split the CPU into ``replicas`` logical devices; must run before TensorFlow starts."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)]
    )


def measure(method, batch_size, dim=128, per_class=8, repeats=3, margin=0.2,
            backend="tensorflow", jit=False, row_sort="auto", replicas=2):
    """One measurement in this process (the worker side). Returns a result dict."""
    import resource

    if method == "cross_replica":
        _configure_replicas(replicas)
    labels, embeddings = make_inputs(batch_size, dim, per_class)
    kernel = None
    if method == "matmul":
        step, sync = _matmul_step(embeddings, backend)
    elif method == "cross_replica":
        step, sync = _cross_replica_step(labels, embeddings, margin, replicas)
        backend = "tensorflow"
        kernel = f"{replicas} replicas"
    elif method == "pml":
        step, sync = _pml_step(labels, embeddings, margin)
        backend = "torch"
    else:
        step, sync = _keras_step(method, backend, labels, embeddings, margin, jit, row_sort)
        if method == "sorted":
            kernel = sorted_kernel(row_sort, batch_size, per_class, backend, jit)
    blocks = None
    if method in ("sorted", "cross_replica"):
        from tftriplet.losses.batch_all_sorted import auto_anchor_block, uses_whole_matrices

        if method == "cross_replica":  # each replica's anchors, blocked if many
            blocks = min(auto_anchor_block(batch_size), batch_size // replicas)
        elif not uses_whole_matrices(batch_size):
            blocks = auto_anchor_block(batch_size)
    walls, cpus, result = _time_calls(step, sync, repeats)
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
        "sorted_kernel": kernel,
        "anchor_block": blocks,
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "median_cpu_s": statistics.median(cpus),
        "peak_rss_bytes": peak_kib * 1024,
        "loss": float(result[0]) if method != "matmul" else None,
        "status": "ok",
    }


def _skip(method, batch_size, reason):
    return {"method": method, "batch_size": batch_size, "status": "skipped", "reason": reason}


def pml_installed():
    try:
        import importlib.util

        return importlib.util.find_spec("pytorch_metric_learning") is not None
    except (ImportError, ValueError):
        return False


def run_one(method, batch_size, args):
    """Run one measurement in a fresh subprocess; returns its result dict."""
    limit = args.max_gb * 1e9
    if method == "dense" and dense_bytes_estimate(batch_size) > limit:
        gb = dense_bytes_estimate(batch_size) / 1e9
        return _skip(method, batch_size, f"would need {gb:,.0f} GB (limit {args.max_gb:g} GB)")
    if method == "pml":
        if not pml_installed():
            return _skip(method, batch_size, "pytorch-metric-learning is not installed")
        need = pml_bytes_estimate(batch_size, args.per_class)
        if need > limit:
            return _skip(
                method, batch_size, f"would need {need / 1e9:,.0f} GB (limit {args.max_gb:g} GB)"
            )
    worker_args = {
        "method": method,
        "batch_size": batch_size,
        "dim": args.dim,
        "per_class": args.per_class,
        "repeats": args.repeats,
        "margin": args.margin,
        "backend": args.backend,
        "jit": args.xla,
        "row_sort": args.row_sort,
        "replicas": args.replicas,
    }
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["KERAS_BACKEND"] = "torch" if method == "pml" else args.backend
    cmd = [sys.executable, "-m", "tftriplet_cli.bench", "--worker", json.dumps(worker_args)]
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=args.timeout
        )
    except subprocess.TimeoutExpired:
        return _skip(method, batch_size, f"timed out after {args.timeout:g} s")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return _skip(method, batch_size, f"failed (exit {proc.returncode}): {tail[0][:200]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def format_table(results):
    """A plain-text table, with the speed-up of sorted over dense at equal batch size and,
    where a ``matmul`` row was measured at the same batch size, each step's time in
    multiples of it (CPU time: less sensitive to other load than wall time)."""
    dense_time = {
        r["batch_size"]: r["median_s"]
        for r in results
        if r["method"] == "dense" and r["status"] == "ok"
    }
    matmul_cpu = {
        r["batch_size"]: r["median_cpu_s"]
        for r in results
        if r["method"] == "matmul" and r["status"] == "ok"
    }
    header = ("B", "method", "median", "cpu", "peak RSS", "load", "loss", "vs dense", "note")
    rows = []
    for r in results:
        if r["status"] != "ok":
            rows.append(
                (str(r["batch_size"]), r["method"], "-", "-", "-", "-", "-", "-", r["reason"])
            )
            continue
        speedup = "-"
        if r["method"] != "dense" and r["batch_size"] in dense_time:
            speedup = f"{dense_time[r['batch_size']] / r['median_s']:.1f}x"
        notes = [_KERNEL_NOTES.get(r.get("sorted_kernel"), r.get("sorted_kernel") or "")]
        if r.get("anchor_block"):
            notes.append(f"anchor blocks of {r['anchor_block']}")
        if r["method"] != "matmul" and r["batch_size"] in matmul_cpu:
            notes.append(f"{r['median_cpu_s'] / matmul_cpu[r['batch_size']]:.1f}x matmul (cpu)")
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


_KERNEL_NOTES = {"positives": "sorts the positives", "merged": "sorts whole rows"}


def _label(result):
    if result["method"] == "pml":
        return "pml (torch)"
    xla = ", XLA" if result.get("jit_compile") and result["backend"] == "tensorflow" else ""
    return f"{result['method']} ({result['backend']}{xla})"


def _fmt_seconds(seconds):
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def machine_description():
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


def run(args):
    """The ``tftriplet bench`` command."""
    results = []
    machine = machine_description()
    print(
        f"batch-all loss + gradient, float32, D={args.dim}, {args.per_class} per class, "
        f"margin {args.margin:g}, median of {args.repeats}; {machine}",
        flush=True,
    )
    if args.preset == "large":
        plan = list(LARGE_PRESET)
    else:
        plan = [(b, m) for b in args.sizes for m in args.methods]
    for batch_size, method in plan:
        result = run_one(method, batch_size, args)
        results.append(result)
        if args.verbose:
            print(json.dumps(result), flush=True)
    print(format_table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": machine, "results": results}, f, indent=2)
    return 0


def _parse_int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise ValueError(f"expected comma-separated integers; got {text!r}") from err
    if not values or min(values) < 1:
        raise ValueError(f"expected positive batch sizes; got {text!r}")
    return values


def add_parser(subparsers):
    """Add the `bench` subcommand to the `tftriplet` command line."""
    parser = subparsers.add_parser(
        "bench", help="time and peak memory of loss + gradient: dense, sorted, pml"
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_arguments(parser):
    """The options of ``tftriplet bench``."""
    import argparse

    def int_list(text):
        try:
            return _parse_int_list(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from err

    def method_list(text):
        methods = [m.strip() for m in text.split(",") if m.strip()]
        known = DEFAULT_METHODS + EXTRA_METHODS
        bad = [m for m in methods if m not in known]
        if bad or not methods:
            raise argparse.ArgumentTypeError(
                f"methods must be among {', '.join(known)}; got {text!r}"
            )
        return methods

    parser.add_argument(
        "--sizes", type=int_list, default=list(DEFAULT_SIZES),
        help="comma-separated batch sizes (default: %(default)s)",
    )
    parser.add_argument(
        "--methods", type=method_list, default=list(DEFAULT_METHODS),
        help="comma-separated among dense,sorted,pml,matmul,cross_replica "
        "(default: dense,sorted,pml)",
    )
    parser.add_argument(
        "--preset", choices=("large",), default=None,
        help="large: the large-batch rows (matmul and sorted at 8192, sorted at 32768, "
        "sorted and cross_replica at 4096) instead of --sizes x --methods",
    )
    parser.add_argument(
        "--replicas", type=int, default=2,
        help="cross_replica: logical CPU replicas (default: 2)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median)")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension D")
    parser.add_argument("--per-class", type=int, default=8, help="samples per class")
    parser.add_argument("--margin", type=float, default=0.2)
    parser.add_argument(
        "--backend", choices=BACKENDS, default="tensorflow",
        help="Keras backend for dense and sorted (pml always runs in PyTorch)",
    )
    parser.add_argument("--xla", action="store_true", help="TensorFlow: jit_compile=True")
    parser.add_argument(
        "--row-sort", choices=("auto", "merged", "positives"), default="auto",
        help="sorted: sort only each anchor's positives, whole rows, or pick (default: auto)",
    )
    parser.add_argument(
        "--max-gb", type=float, default=12.0,
        help="skip a method whose estimated peak memory exceeds this (default: 12)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per measurement")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--verbose", action="store_true", help="print each result as it comes")


def _worker_main(spec):
    kwargs = json.loads(spec)
    print(json.dumps(measure(**kwargs)), flush=True)
    return 0


if __name__ == "__main__":
    import tftriplet  # noqa: F401  (every measurement process starts with the library loaded)

    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(_worker_main(sys.argv[2]))
    sys.exit("usage: tftriplet bench [options]  (this module's own entry is for its workers)")
