"""Every op of every loss and metric has a GPU kernel for the dtypes it is used with.

No GPU is needed: the full ``tensorflow`` wheel registers its GPU kernels (and, once XLA has
compiled something, XLA's ``XLA_GPU_JIT`` kernels) on any machine, and
``tensorflow.python.framework.kernels.get_registered_kernels_for_op`` lists them with their
dtype constraints. ``tensorflow-cpu`` registers none, so this module skips there; it runs in
``tox -e gpu-audit``.

Each loss (every strategy, distance and, for batch-all, method and sorted kernel; each
strategy with a cross-batch memory) and each metric is traced with its gradient (losses)
or ``update_state`` + ``result`` (metrics) in a ``tf.function`` graph, with a static and
an unknown batch size, and under XLA (``jit_compile=True``). Every op of those graphs,
including the bodies of loops and branches, is looked up:

- graph mode: a kernel for device ``GPU`` whose type constraints admit the node's dtypes.
  A kernel that keeps *every* input and output in host memory (TensorFlow registers such
  kernels for int32 shape arithmetic) runs on the CPU; it is accepted only for scalar and
  1-D outputs (shapes and counts) and reported otherwise.
- XLA: the graph is compiled whole, so each op needs an ``XLA_GPU_JIT`` kernel for its
  dtypes; there is no per-op CPU fallback inside a cluster (an op without one fails to
  compile instead of running on the CPU).

Ops that only route data (function arguments and results, calls, ``NoOp``) have no kernel
of their own and are skipped; the bodies of the functions they call are audited, those
that XLA compiles inside a graph (the fused batch-all kernel) as under XLA.
"""

import itertools

import keras
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

if keras.backend.backend() != "tensorflow":
    pytest.skip("the audit traces TensorFlow graphs", allow_module_level=True)

from helpers import batch_all_sorted  # noqa: E402
from tensorflow.core.framework import types_pb2  # noqa: E402
from tensorflow.python.framework import kernels  # noqa: E402

import tftriplet  # noqa: E402
from tftriplet.inputs import standardize_inputs  # noqa: E402


def _gpu_kernels_registered():
    return any(
        k.device_type == "GPU" for k in kernels.get_registered_kernels_for_op("MatMul").kernel
    )


pytestmark = pytest.mark.skipif(
    not _gpu_kernels_registered(),
    reason="this TensorFlow registers no GPU kernels (tensorflow-cpu); run tox -e gpu-audit",
)

# Ops with no kernel of their own: graph plumbing, calls whose bodies are audited.
NO_KERNEL = {
    "_Arg",
    "_Retval",
    "NoOp",
    "Placeholder",  # a traced function's arguments and captured variables
    "PartitionedCall",
    "StatefulPartitionedCall",
}
BATCH = 12
DIM = 5


# ------------------------------------------------------------------------- the audit


def ops_of(graph, device, seen=None):
    """``(op, device)`` for every op of ``graph`` and of the functions its ops call (loops,
    branches, calls): the body of a function that XLA must compile (a ``jit_compile``
    function called from a graph) is looked up on XLA's device, ``XLA_GPU_JIT``."""
    seen = set() if seen is None else seen
    for op in graph.get_operations():
        yield op, device
        called_device = "XLA_GPU_JIT" if must_compile(op) else device
        for attr in op.op_def.attr:
            if attr.type not in ("func", "list(func)"):
                continue
            value = op.get_attr(attr.name)
            for called in value if isinstance(value, list) else [value]:
                name = called.name if hasattr(called, "name") else called
                if (name, called_device) in seen:
                    continue
                seen.add((name, called_device))
                function = graph._get_function(name)  # noqa: SLF001 - no public accessor
                if function is not None:
                    yield from ops_of(function.graph, called_device, seen)


def must_compile(op):
    """Whether ``op`` calls a function that XLA compiles whole."""
    try:
        return bool(op.get_attr("_XlaMustCompile"))
    except ValueError:
        return False


def type_values(node_def, name):
    value = node_def.attr[name]
    if value.HasField("type"):
        return [value.type]
    return list(value.list.type)


def admits(kernel, node_def):
    for constraint in kernel.constraint:
        allowed = set(constraint.allowed_values.list.type)
        if constraint.name not in node_def.attr:
            return False
        if any(t not in allowed for t in type_values(node_def, constraint.name)):
            return False
    return True


def on_host_only(kernel, op):
    names = {arg.name for arg in op.op_def.input_arg} | {arg.name for arg in op.op_def.output_arg}
    return names and names <= set(kernel.host_memory_arg)


def batch_by_batch(shape):
    """Whether a tensor of ``shape`` may hold ``B x B`` or more elements: two or more
    dimensions unknown or above 1 (a ``(B, 1)`` column or a shape vector does not)."""
    if shape.rank is None:
        return True
    return sum(1 for d in shape if d is None or d > 1) >= 2


def dtypes_of(op):
    """``"T=float,Tidx=int32"``: the node's type attributes."""
    parts = []
    for name in sorted(op.node_def.attr):
        names = [types_pb2.DataType.Name(t)[3:].lower() for t in type_values(op.node_def, name)]
        if names:
            parts.append(f"{name}={'/'.join(names)}")
    return ",".join(parts)


def audit(graph, device):
    """``(op type, dtypes, why)`` for every op of ``graph`` without a usable kernel."""
    problems = set()
    for op, on in ops_of(graph, device):
        if op.type in NO_KERNEL or graph._get_function(op.type) is not None:  # noqa: SLF001
            continue
        # DEFAULT kernels serve every device type (TensorFlow registers its int32 shape
        # arithmetic there, with the data in host memory).
        devices = (on, "DEFAULT") if on == "GPU" else (on,)
        candidates = [
            k
            for k in kernels.get_registered_kernels_for_op(op.type).kernel
            if k.device_type in devices and admits(k, op.node_def)
        ]
        if not candidates:
            problems.add((op.type, dtypes_of(op), f"no {on} kernel"))
            continue
        if on == "GPU" and all(on_host_only(k, op) for k in candidates):
            if any(batch_by_batch(o.shape) for o in op.outputs):
                shapes = ",".join(str(o.shape) for o in op.outputs)
                problems.add(
                    (op.type, dtypes_of(op), f"GPU kernel keeps its data on the host: {shapes}")
                )
    return sorted(problems)


# ------------------------------------------------------------ what is traced, and how


def loss_cases():
    cases = []
    for distance, soft in itertools.product(tftriplet.DISTANCES, (False, True)):
        for method in ("dense", "sorted"):
            if method == "sorted" and (distance == "cosine" or soft):
                continue  # refused with a ValueError: the sorted form needs the plain hinge
            cases.append(
                (
                    f"batch_all-{method}-{distance}-soft{soft}",
                    tftriplet.BatchAllTripletLoss(
                        margin=0.2, distance=distance, soft=soft, method=method
                    ),
                )
            )
        for cls in (tftriplet.BatchHardTripletLoss, tftriplet.SemiHardTripletLoss):
            if soft and not cls.supports_soft:
                continue
            name = f"{cls.__name__}-{distance}-soft{soft}"
            cases.append((name, cls(margin=0.2, distance=distance, soft=soft)))
    for cls in (tftriplet.BatchAllTripletLoss, tftriplet.BatchHardTripletLoss,
                tftriplet.SemiHardTripletLoss):  # a cross-batch memory: variables, the pool
        cases.append((f"{cls.__name__}-memory", cls(margin=0.2, memory_size=64,
                                                     memory_warmup=1)))
    for row_sort, squared in itertools.product(("merged", "positives", "auto"), (False, True)):

        def sorted_kernel(y, x, row_sort=row_sort, squared=squared):
            y, x = standardize_inputs(y, x)
            return batch_all_sorted(y, x, 0.2, squared=squared, row_sort=row_sort)["loss"]

        cases.append((f"batch_all_sorted-{row_sort}-squared{squared}", sorted_kernel))
    return cases


def metric_cases():
    cases = []
    for distance in tftriplet.DISTANCES:
        for method in ("dense", "sorted"):
            if method == "sorted" and distance == "cosine":
                continue
            cases.append(
                (
                    f"FractionPositiveTriplets-{method}-{distance}",
                    lambda d=distance, m=method: tftriplet.FractionPositiveTriplets(
                        distance=d, method=m
                    ),
                )
            )
        for cls in (
            tftriplet.TripletDifficulty,
            tftriplet.MeanPositiveDistance,
            tftriplet.MeanNegativeDistance,
        ):
            cases.append((f"{cls.__name__}-{distance}", lambda c=cls, d=distance: c(distance=d)))
    return cases


def loss_graph(loss, batch, jit, dtype, label_dtype):
    def step(y, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss(y, x)
        return value, tape.gradient(value, x)

    function = tf.function(step, jit_compile=jit)
    return function.get_concrete_function(
        tf.TensorSpec([batch], label_dtype), tf.TensorSpec([batch, DIM], dtype)
    ).graph


def metric_graph(make_metric, batch, jit, dtype, label_dtype):
    metric = make_metric()
    metric.update_state(  # builds the variables outside the traced function
        np.zeros(4, label_dtype), np.zeros((4, DIM), dtype)
    )

    def step(y, x):
        metric.update_state(y, x)
        return metric.result()

    function = tf.function(step, jit_compile=jit)
    return function.get_concrete_function(
        tf.TensorSpec([batch], label_dtype), tf.TensorSpec([batch, DIM], dtype)
    ).graph


MODES = [
    # graph: what model.fit runs without XLA (jit_compile=False, or under tf.distribute);
    # an unknown batch size traces both kernels of the sorted form's run-time choice.
    ("graph", None, False, "GPU"),
    # XLA: what model.fit runs on a GPU by default (jit_compile="auto").
    ("xla", None, True, "XLA_GPU_JIT"),
]
DTYPES = [("float32", "int32"), ("float64", "int64")]

#: Element-wise int32 ops on ``B x B`` tensors that TensorFlow runs in host memory outside
#: XLA (its GPU kernels of int32 arithmetic keep their data on the host): the row-rank
#: arithmetic of the sorted form and the argmin/argmax bookkeeping of the mining
#: strategies. Documented in docs/install.md; under XLA they run on the GPU.
HOST_INT32_OPS = {
    "AddV2",
    "BroadcastTo",
    "Equal",
    "Less",
    "Maximum",
    "Minimum",
    "Pack",
    "Reshape",
    "StridedSlice",
    "Sub",
}


def unexpected(problems, device):
    """The problems not in the documented list: all of them under XLA."""
    if device != "GPU":
        return problems
    return [
        p
        for p in problems
        if not (
            p[0] in HOST_INT32_OPS
            and "on the host" in p[2]
            and all(part.endswith("=int32") for part in p[1].split(","))
        )
    ]


@pytest.fixture(scope="module", autouse=True)
def xla_kernels_registered():
    # XLA registers its compilation kernels (XLA_CPU_JIT, XLA_GPU_JIT) when it first runs.
    tf.function(lambda x: x + 1, jit_compile=True)(tf.constant(1.0))
    assert any(
        k.device_type == "XLA_GPU_JIT"
        for k in kernels.get_registered_kernels_for_op("MatMul").kernel
    ), "XLA's GPU kernels are not registered in this TensorFlow"


def test_the_audit_sees_what_it_checks():
    # A CPU-only op (no GPU kernel) and a GPU op with its data pinned to the host are found.
    @tf.function
    def uses_cpu_only_ops(x):
        return tf.strings.as_string(x), tf.shape(x) + 1

    graph = uses_cpu_only_ops.get_concrete_function(tf.TensorSpec([None, 2], tf.int32)).graph
    problems = audit(graph, "GPU")
    assert any(p[0] == "AsString" and p[2] == "no GPU kernel" for p in problems), problems
    assert not any(p[0] in ("Shape", "AddV2") for p in problems)  # 1-D shape arithmetic

    @tf.function
    def big_int32(x):
        return x + x  # AddV2 int32 on GPU: a host-memory kernel

    graph = big_int32.get_concrete_function(tf.TensorSpec([None, 3], tf.int32)).graph
    assert any(p[0] == "AddV2" and "host" in p[2] for p in audit(graph, "GPU"))

    # A function XLA compiles, called from a graph: its body is looked up on XLA's device.
    compiled = tf.function(lambda x: (tf.strings.as_string(x), x * x), jit_compile=True)

    @tf.function
    def calls_compiled(x):
        return compiled(x), x + x

    graph = calls_compiled.get_concrete_function(tf.TensorSpec([None, 3], tf.int32)).graph
    problems = audit(graph, "GPU")
    assert any(p[0] == "AsString" and p[2] == "no XLA_GPU_JIT kernel" for p in problems)
    assert not any(p[0] == "Mul" for p in problems)  # int32 on the GPU under XLA
    assert any(p[0] == "AddV2" and "host" in p[2] for p in problems)  # the graph's own


def run_audit(cases, make_graph, batch, jit, device, dtype, label_dtype):
    failures = {}
    for name, case in cases:
        if jit and "positives" in name:
            continue  # refused under XLA (ValueError): k is unknown when compiling
        problems = unexpected(
            audit(make_graph(case, batch, jit, dtype, label_dtype), device), device
        )
        if problems:
            failures[name] = problems
    return failures


def with_dtype(loss, dtype):
    if isinstance(loss, keras.losses.Loss):
        return type(loss).from_config({**loss.get_config(), "dtype": dtype})
    return loss


@pytest.mark.parametrize(("mode", "batch", "jit", "device"), MODES, ids=[m[0] for m in MODES])
@pytest.mark.parametrize(("dtype", "label_dtype"), DTYPES, ids=[d[0] for d in DTYPES])
def test_every_loss_op_has_a_gpu_kernel(mode, batch, jit, device, dtype, label_dtype):
    def make_graph(loss, *args):
        return loss_graph(with_dtype(loss, dtype), *args)

    failures = run_audit(loss_cases(), make_graph, batch, jit, device, dtype, label_dtype)
    assert not failures, failures


@pytest.mark.parametrize(("mode", "batch", "jit", "device"), MODES, ids=[m[0] for m in MODES])
@pytest.mark.parametrize(("dtype", "label_dtype"), DTYPES, ids=[d[0] for d in DTYPES])
def test_every_metric_op_has_a_gpu_kernel(mode, batch, jit, device, dtype, label_dtype):
    failures = run_audit(metric_cases(), metric_graph, batch, jit, device, dtype, label_dtype)
    assert not failures, failures


@pytest.mark.parametrize("label_dtype", ["int32", "int64"])
def test_label_and_index_masks_run_on_the_gpu_outside_xla(label_dtype):
    # int32 labels are widened to int64 for the B x B comparisons (backend_ops.gpu_comparable)
    from tftriplet.masks import anchor_pair_masks, anchor_positive_mask, triplet_mask

    @tf.function
    def masks(y):
        anchors = tf.range(tf.shape(y)[0] // 2)
        return anchor_positive_mask(y), triplet_mask(y), anchor_pair_masks(y, anchors)

    graph = masks.get_concrete_function(tf.TensorSpec([None], label_dtype)).graph
    assert audit(graph, "GPU") == []
