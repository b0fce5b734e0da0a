"""``tftriplet bench``'s large-batch rows, run at toy sizes (speed is never asserted here)."""

import json

import numpy as np

from tftriplet_cli.bench import LARGE_PRESET


def test_matmul_and_cross_replica_rows(tmp_path, capsys):
    """Each row in its own process: the matmul floor, the sorted step, and the
    cross-replica step on 2 logical CPU replicas, whose summed loss is the one-device loss
    of the same global batch."""
    from tftriplet_cli import main

    path = tmp_path / "bench.json"
    args = ["bench", "--sizes", "24", "--methods", "matmul,sorted,cross_replica", "--dim", "4",
            "--per-class", "4", "--repeats", "1", "--json", str(path)]
    assert main(args) == 0
    text = capsys.readouterr().out
    results = {r["method"]: r for r in json.loads(path.read_text())["results"]}
    assert all(r["status"] == "ok" for r in results.values()), results
    assert results["matmul"]["loss"] is None
    np.testing.assert_allclose(results["cross_replica"]["loss"], results["sorted"]["loss"],
                               rtol=1e-5)
    assert results["cross_replica"]["peak_rss_bytes"] > 0
    assert "2 replicas" in text and "x matmul (cpu)" in text and "| load" in text


def test_large_preset_has_the_rows_of_the_issue():
    assert set(LARGE_PRESET) == {(8192, "matmul"), (8192, "sorted"), (32768, "sorted"),
                                 (4096, "sorted"), (4096, "cross_replica")}


def test_backends_preset_compares_every_backend_with_the_tf_graph():
    """The preset's rows, and the table's multiple of the TensorFlow graph's time (from
    made-up results: speed is never asserted)."""
    from tftriplet_cli.bench import BACKENDS_PRESET
    from tftriplet_cli.bench.report import format_table

    engines = [("tensorflow", False), ("tensorflow", True), ("jax", False), ("torch", False)]
    assert set(BACKENDS_PRESET) == {
        (b, "sorted", backend, xla) for b in (2048, 8192) for backend, xla in engines
    } | {(8192, "matmul", backend, False) for backend in ("tensorflow", "jax", "torch")}

    def row(backend, xla, seconds, method="sorted"):
        return {"status": "ok", "method": method, "batch_size": 2048, "backend": backend,
                "jit_compile": xla, "median_s": seconds, "median_cpu_s": seconds,
                "peak_rss_bytes": 10**9, "load_average": 1.0, "loss": 0.2, "kernel": "search"}

    table = format_table([row("tensorflow", False, 0.1), row("tensorflow", True, 0.25),
                          row("jax", False, 0.05), row("torch", False, 0.3),
                          row("tensorflow", False, 0.02, "matmul"),
                          row("jax", False, 0.01, "matmul")])
    lines = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert "the TF graph" not in lines["sorted (tensorflow)"]
    assert "2.50x the TF graph" in lines["sorted (tensorflow, XLA)"]
    assert "0.50x the TF graph" in lines["sorted (jax)"]
    # each step against its own backend's product; none where that backend has no matmul row
    assert "5.0x matmul" in lines["sorted (tensorflow)"]
    assert "12.5x matmul" in lines["sorted (tensorflow, XLA)"]
    assert "5.0x matmul" in lines["sorted (jax)"]
    assert "matmul" not in lines["sorted (torch)"]
