"""The plan (tftriplet/engine/plan.py): which kernel runs, in which blocks, decided once from
what is known when the graph is traced, and the kernel that runs is the one it names."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import pk_labels, spy_on_kernels

import tftriplet
from tftriplet import engine
from tftriplet.engine import plan as plans
from tftriplet.engine.plan import (
    CLASS_KERNEL,
    CLASS_KERNEL_DIVISOR,
    COMPARE_MAX_POSITIVES,
    COUNT_BLOCK_ENTRIES,
    CPU_XLA_BLOCK_ENTRIES,
    DENSE_MAX_BATCH,
    SLOT_BUCKETS,
    TORCH_CPU_BLOCK_ENTRIES,
    TORCH_CPU_MIN_BLOCK,
    TRIPLE_BLOCK_ENTRIES,
    plan_batch_all,
)
from tftriplet_conformance import reference


def test_auto_evaluates_every_triple_up_to_the_dense_limit():
    for mode in ("eager", "graph", "compiled"):
        small = plan_batch_all(DENSE_MAX_BATCH, mode=mode)
        assert (small.kernel, small.block) == ("triples", "whole")
        large = plan_batch_all(DENSE_MAX_BATCH + 1, mode=mode)
        assert large.kernel == CLASS_KERNEL[mode]
        assert large.merged_above == CLASS_KERNEL_DIVISOR
        cap = COMPARE_MAX_POSITIVES if large.kernel == "compare" else None
        assert large.max_positives == cap
        assert plan_batch_all(None, mode=mode).kernel == CLASS_KERNEL[mode]  # unknown size


def test_each_execution_mode_has_its_class_kernel():
    assert CLASS_KERNEL == {"eager": "search", "graph": "fused", "compiled": "compare"}


def test_the_fused_kernel_takes_the_first_bucket_that_holds_the_class():
    plan = plan_batch_all(8192, mode="graph")
    assert plan.kernel == "fused"
    assert [plan.slots_for(k) for k in (1, 4, 5, 8, 9, 32, 33)] == [4, 4, 8, 8, 16, 32, None]
    assert SLOT_BUCKETS == tuple(sorted(SLOT_BUCKETS))
    # k samples a class: k - 1 positives; above the last bucket the search kernel counts
    assert plan.kernel_for(SLOT_BUCKETS[-1] - 1, 8192) == "fused"
    assert plan.kernel_for(SLOT_BUCKETS[-1], 8192) == "search"
    assert plan.kernel_for(8192 // CLASS_KERNEL_DIVISOR + 1, 8192) == "merged"
    # the other modes' kernels have no buckets
    assert plan_batch_all(8192, mode="eager").kernel_for(100, 8192) == "search"


def test_a_graph_searches_where_xla_cannot_compile(monkeypatch):
    """tensorflow-metal's GPU on Apple silicon: no XLA, so no fused kernel."""
    import platform

    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(platform, "processor", lambda: "arm")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    assert plan_batch_all(8192, mode="graph").kernel == "search"
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert plan_batch_all(8192, mode="graph").kernel == "fused"  # Apple silicon's CPU


@pytest.mark.parametrize("batch_size", [None, 8, 10**4])
def test_the_method_and_row_sort_are_obeyed(batch_size):
    dense = plan_batch_all(batch_size, method="dense", mode="eager")
    assert (dense.kernel, dense.block) == ("triples", "whole")
    assert plan_batch_all(batch_size, method="dense", anchor_block=3, mode="eager").block == 3
    merged = plan_batch_all(batch_size, method="sorted", row_sort="merged", mode="graph")
    assert (merged.kernel, merged.merged_above) == ("merged", None)
    forced = plan_batch_all(batch_size, method="sorted", row_sort="positives",
                            mode="compiled")
    assert (forced.kernel, forced.merged_above) == ("compare", None)


def test_the_soft_margin_runs_triple_by_triple_in_bounded_blocks():
    assert plan_batch_all(DENSE_MAX_BATCH, soft=True, mode="eager").block == "whole"
    for b in (DENSE_MAX_BATCH + 1, 100, 1000):
        plan = plan_batch_all(b, soft=True, mode="eager")
        block = plan.block_size(b, b)
        assert plan.kernel == "triples" and block <= DENSE_MAX_BATCH
        assert block * b * b <= TRIPLE_BLOCK_ENTRIES or block == 1
    with pytest.raises(ValueError, match="method='sorted' computes the hinge"):
        plan_batch_all(64, soft=True, method="sorted", mode="eager")


def test_automatic_count_blocks_keep_a_block_within_its_budget():
    assert plan_batch_all(100, mode="eager").block_size(100, 100) == 100  # whole
    for b in (1448, 8192, 32768):
        block = plan_batch_all(b, mode="eager").block_size(b, b)
        assert block & (block - 1) == 0  # a power of two
        assert block * b <= COUNT_BLOCK_ENTRIES < 2 * block * b
    assert plan_batch_all(1024, mode="eager").block_size(1024, 1024) == 1024  # whole
    assert plan_batch_all(10**9, mode="eager").block_size(10**9, 10**9) == 1
    # capped at the anchors: a replica's 5 anchors against a batch of 8192
    assert plan_batch_all(8192, mode="eager").block_size(5, 8192) == 5


@pytest.mark.parametrize("row_sort", ["auto", "positives", "merged"])
def test_xla_on_a_cpu_counts_in_blocks_that_stay_in_the_cache(monkeypatch, row_sort):
    """Compiled on a CPU the counting blocks keep near CPU_XLA_BLOCK_ENTRIES entries; with
    a GPU or TPU, and in the other modes, near COUNT_BLOCK_ENTRIES; the triples' blocks
    are sized as before."""
    for accelerator in (False, True):
        monkeypatch.setattr(plans, "accelerator_visible", lambda a=accelerator: a)
        for mode in ("eager", "graph", "compiled"):
            small = mode == "compiled" and not accelerator
            entries = CPU_XLA_BLOCK_ENTRIES if small else COUNT_BLOCK_ENTRIES
            for b in (2048, 8192, 32768):
                plan = plan_batch_all(b, mode=mode, row_sort=row_sort)
                assert plan.count_entries == entries
                block = plan.block_size(b, b)
                assert block * b <= entries < 2 * block * b
                traced = tf.function(lambda n, p=plan: p.block_size(n, n),
                                     input_signature=[tf.TensorSpec((), tf.int32)])
                assert int(traced(tf.constant(b))) == block  # the same rule, unknown size
            triples = plan_batch_all(3000, soft=True, mode=mode)
            assert triples.block_size(3000, 3000) == plan_batch_all(
                3000, soft=True, mode="eager").block_size(3000, 3000)


def test_pytorch_on_a_cpu_counts_in_smaller_blocks_of_a_least_its_floor(monkeypatch):
    """Under PyTorch on a CPU the counting blocks keep near TORCH_CPU_BLOCK_ENTRIES
    entries, with at least TORCH_CPU_MIN_BLOCK anchors; on its GPU near
    COUNT_BLOCK_ENTRIES, with no floor; never more anchors than the batch."""
    assert (TORCH_CPU_BLOCK_ENTRIES, TORCH_CPU_MIN_BLOCK, COUNT_BLOCK_ENTRIES) == (
        2**20, 128, 2**21)
    expected = {  # batch size: (on the CPU, on a GPU)
        100: (100, 100),  # the whole batch
        2048: (512, 1024),  # 2**20 / 2048, 2**21 / 2048
        8192: (128, 256),
        32768: (128, 64),  # the floor, not 2**20 / 32768
        2**20: (128, 2),
    }
    plans_made = {}
    with monkeypatch.context() as patch:
        patch.setattr(plans.backend, "backend", lambda: "torch")
        for accelerator in (False, True):
            patch.setattr(plans, "accelerator_visible", lambda a=accelerator: a)
            for b, blocks in expected.items():
                plan = plans_made[b, accelerator] = plan_batch_all(b, mode="eager")
                assert plan.block_size(b, b) == blocks[accelerator]
                assert plan.block_size(5, b) == min(5, blocks[accelerator])  # at most the anchors
    # the same rule for a batch size known only when the graph runs (TensorFlow)
    for (b, accelerator), plan in plans_made.items():
        traced = tf.function(lambda n, p=plan: p.block_size(n, n),
                             input_signature=[tf.TensorSpec((), tf.int32)])
        assert int(traced(tf.constant(b))) == expected[b][accelerator]


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("b", [1, 40, 3000])
def test_the_block_of_an_unknown_batch_size_follows_the_same_rule(soft, b):
    plan = plan_batch_all(None, soft=soft, mode="graph")
    known = plan_batch_all(b, soft=soft, mode="eager").block_size(b, b)
    traced = tf.function(lambda n: plan.block_size(n, n),
                         input_signature=[tf.TensorSpec((), tf.int32)])
    assert int(traced(tf.constant(b))) == known


@pytest.mark.parametrize("bad, match", [
    ({"method": "fast"}, "method must be one of"),
    ({"row_sort": "full"}, "row_sort must be one of"),
    ({"anchor_block": 0}, "anchor_block must be at least 1"),
])
def test_bad_options_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        plan_batch_all(64, **bad)


def test_describe_says_what_runs(monkeypatch):
    monkeypatch.setattr(plans, "accelerator_visible", lambda: True)
    assert plan_batch_all(24, mode="eager").describe(24) == "triples"
    assert plan_batch_all(512, mode="eager").describe(512) == (
        f"search, merged above B/{CLASS_KERNEL_DIVISOR} positives")
    assert plan_batch_all(8192, mode="compiled").describe(8192) == (
        f"compare, merged above min(B/{CLASS_KERNEL_DIVISOR}, {COMPARE_MAX_POSITIVES}) "
        "positives, blocks of 256")
    assert plan_batch_all(None, mode="graph").describe() == (
        f"fused, search above {SLOT_BUCKETS[-1] - 1} positives, merged above "
        f"B/{CLASS_KERNEL_DIVISOR} positives, blocks from the batch size")


def test_the_class_limit_is_the_smaller_bound():
    search = plan_batch_all(None, mode="graph")
    compare = plan_batch_all(None, mode="compiled")
    for b in (64, 2048, 8192, 65536):
        assert search.class_limit(b) == b // CLASS_KERNEL_DIVISOR
        assert compare.class_limit(b) == min(b // CLASS_KERNEL_DIVISOR, COMPARE_MAX_POSITIVES)
        assert compare.kernel_for(COMPARE_MAX_POSITIVES + 1, 65536) == "merged"
    assert plan_batch_all(None, row_sort="positives", mode="compiled").class_limit(64) is None
    traced = tf.function(lambda b: compare.class_limit(b),
                         input_signature=[tf.TensorSpec((), tf.int32)])
    assert int(traced(tf.constant(65536))) == COMPARE_MAX_POSITIVES


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
@pytest.mark.parametrize("num_classes, per_class", [(12, 4), (4, 12)])
def test_the_kernel_that_runs_is_the_planned_one(monkeypatch, mode, num_classes, per_class):
    """Eagerly the class size is known and one kernel runs: the class kernel while no anchor
    has more than B / 8 positives, else the whole-row sort. In a graph and under XLA it is
    known only when the graph runs: both are traced into a cond; the numbers are the
    reference's either way."""
    calls = spy_on_kernels(monkeypatch)
    planned = []
    original = plans.plan_batch_all
    monkeypatch.setattr(engine, "plan_batch_all",
                        lambda *a, **k: planned.append(original(*a, **k)) or planned[-1])
    labels = pk_labels(num_classes, per_class)
    x = np.random.default_rng(1).normal(size=(len(labels), 5))

    def loss(y, e):
        return tftriplet.batch_all_triplet_loss(y, e, 0.3)[0]

    fn = loss if mode == "eager" else tf.function(loss, jit_compile=(mode == "xla"))
    got = fn(tf.constant(labels), tf.constant(x))
    np.testing.assert_allclose(float(got), reference.batch_all(labels, x, 0.3)["loss"],
                               rtol=1e-9)
    (plan,) = planned
    assert plan.mode == {"eager": "eager", "graph": "graph", "xla": "compiled"}[mode]
    assert plan.kernel == CLASS_KERNEL[plan.mode]
    if mode == "eager":
        few = per_class - 1 <= len(labels) // CLASS_KERNEL_DIVISOR
        assert calls == ["search" if few else "merged"]
    elif mode == "graph":  # each bucket of the fused kernel, the search above, the merged
        assert sorted(calls) == ["fused"] * len(SLOT_BUCKETS) + ["merged", "search"]
    else:  # each bucket of the compare kernel, its loop above, the merged
        assert sorted(calls) == ["compare"] * (len(SLOT_BUCKETS) + 1) + ["merged"]
