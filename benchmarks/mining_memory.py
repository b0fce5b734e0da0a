"""Semi-hard mining at O(B^2) memory versus the (B, B, B) tile, as a printed table.

For each batch size, traces loss + gradient with TensorFlow and reports the largest tensor
in the graph (elements) and the median wall time of an XLA-compiled step on this machine.
The "tile" column is the TF Addons approach, written here with keras.ops: compare every
negative with every anchor-positive distance in one (B, B, B) boolean tensor. It is only
run up to --max-cubic (its memory grows with B^3).

    python benchmarks/mining_memory.py --sizes 64 256 1024 --max-cubic 256
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

import tftriplet  # noqa: E402
from tftriplet.masks import anchor_negative_mask, anchor_positive_mask  # noqa: E402


def semi_hard_tile(labels, embeddings, margin=0.2):
    """Semi-hard with a (B, B, B) comparison tile (TF Addons' approach), same definition."""
    d = tftriplet.pairwise_distances(embeddings)
    positive, negative = anchor_positive_mask(labels), anchor_negative_mask(labels)
    # farther[i, j, k]: k is a negative of i with d(i, k) > d(i, j)
    farther = ops.logical_and(
        ops.expand_dims(negative, 1), ops.greater(ops.expand_dims(d, 1), ops.expand_dims(d, 2))
    )
    big = ops.max(d) + 1.0
    closest_farther = ops.min(ops.where(farther, ops.expand_dims(d, 1), big), axis=2)
    farthest = ops.max(ops.where(negative, d, 0.0), axis=1, keepdims=True)
    d_an = ops.where(ops.any(farther, axis=2), closest_farther, farthest)
    has_negative = ops.expand_dims(ops.any(negative, axis=1), 1)
    mask = ops.cast(ops.logical_and(positive, has_negative), d.dtype)
    hinge = ops.maximum(d - d_an + margin, 0.0) * mask
    return ops.sum(hinge) / ops.maximum(ops.sum(mask), 1.0)


def step(fn, labels):
    def value_and_grad(e):
        with tf.GradientTape() as tape:
            tape.watch(e)
            value = fn(labels, e)
        return value, tape.gradient(value, e)

    return value_and_grad


def largest_tensor(fn, labels, dim):
    graph = (
        tf.function(step(fn, labels))
        .get_concrete_function(tf.TensorSpec((labels.shape[0], dim), "float32"))
        .graph
    )
    return max(
        int(np.prod(t.shape.as_list()))
        for op in graph.get_operations()
        for t in op.outputs
        if t.shape.rank is not None and t.shape.is_fully_defined()
    )


def median_ms(fn, labels, x, repeats):
    compiled = tf.function(step(fn, labels), jit_compile=True)
    value, _ = compiled(x)  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        v, g = compiled(x)
        g.numpy()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times)), float(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--classes", type=int, default=16)
    parser.add_argument("--max-cubic", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"device: {tf.config.list_logical_devices()[-1].name}, dim {args.dim}")
    header = ("B", "largest ours", "largest tile", "ms ours", "ms tile", "loss ours", "loss tile")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for b in args.sizes:
        labels = tf.constant(rng.integers(0, args.classes, b), dtype="int64")
        x = tf.constant(rng.normal(size=(b, args.dim)).astype("float32"))
        ours = lambda y, e: tftriplet.semi_hard_triplet_loss(y, e)  # noqa: E731
        row = [b, largest_tensor(ours, labels, args.dim)]
        ms_ours, loss_ours = median_ms(ours, labels, x, args.repeats)
        if b <= args.max_cubic:
            row.append(largest_tensor(semi_hard_tile, labels, args.dim))
            ms_tile, loss_tile = median_ms(semi_hard_tile, labels, x, args.repeats)
            row += [f"{ms_ours:.2f}", f"{ms_tile:.2f}", f"{loss_ours:.6f}", f"{loss_tile:.6f}"]
        else:
            row += ["(skipped)", f"{ms_ours:.2f}", "-", f"{loss_ours:.6f}", "-"]
        print("| " + " | ".join(str(c) for c in row) + " |", flush=True)


if __name__ == "__main__":
    main()
