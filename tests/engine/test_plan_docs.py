"""docs/large-batches.md states the plan's rules: its numbers are the plan's constants."""

import re
from pathlib import Path

from tftriplet.engine import plan as plans
from tftriplet.engine.plan import (
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
from tftriplet.searches import TORCH_COMPARE_MAX_KEYS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "large-batches.md"


def test_the_page_states_the_plan_as_it_is(monkeypatch):
    text = PAGE.read_text()
    assert f"at most {DENSE_MAX_BATCH} samples (static)" in text
    assert f"blocks of at most {DENSE_MAX_BATCH} anchors" in text
    assert f"above `B / {CLASS_KERNEL_DIVISOR}` positives" in text
    assert f"**fused** up to {SLOT_BUCKETS[-1] - 1} positives per anchor (classes of " + (
        ", ".join(map(str, SLOT_BUCKETS[:-1])) + f" or {SLOT_BUCKETS[-1]} slots)") in text
    buckets = ", ".join(map(str, SLOT_BUCKETS[:-1])) + f" or {SLOT_BUCKETS[-1]} slots"
    assert f"**compare** (unrolled over {buckets}, a loop above)" in text
    assert f"above `min(B / {CLASS_KERNEL_DIVISOR}, {COMPARE_MAX_POSITIVES})` positives" in text
    assert "near 2²¹ entries" in text and COUNT_BLOCK_ENTRIES == 2**21
    assert "near 2²² entries" in text and TRIPLE_BLOCK_ENTRIES == 2**22
    assert "near 2¹⁸ entries" in text and CPU_XLA_BLOCK_ENTRIES == 2**18
    assert f"Under PyTorch, up to {TORCH_COMPARE_MAX_KEYS} keys" in text
    assert "under PyTorch on a CPU, near 2²⁰" in text and TORCH_CPU_BLOCK_ENTRIES == 2**20
    assert f"no fewer than {TORCH_CPU_MIN_BLOCK} anchors" in text
    with monkeypatch.context() as patch:
        patch.setattr(plans.backend, "backend", lambda: "torch")
        patch.setattr(plans, "accelerator_visible", lambda: False)
        torch_blocks = [plan_batch_all(b, mode="eager").block_size(b, b)
                        for b in (2048, 8192, 32768)]
    assert torch_blocks == [512, 128, 128]
    assert "(512 anchors at B=2048, 128 at B=8192 and at B=32768)" in " ".join(text.split())
    monkeypatch.setattr(plans, "accelerator_visible", lambda: False)
    xla = plan_batch_all(2048, mode="compiled")
    assert (xla.block_size(2048, 2048), xla.block_size(8192, 8192)) == (128, 32)
    assert "128 anchors at B=2048, 32 at B=8192" in text
    # "the whole batch up to W samples, X anchors at B=8192, Y at B=32768"
    whole, at_8192, at_32768 = map(int, re.search(
        r"whole batch up to (\d+) samples, (\d+) anchors at B=8192, (\d+) at\s+B=32768",
        text).groups())
    block = lambda b: plan_batch_all(b, mode="eager").block_size(b, b)  # noqa: E731
    assert block(whole) == whole and block(whole + 1) < whole + 1
    assert (block(8192), block(32768)) == (at_8192, at_32768)
