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
