"""``tftriplet demo --memory N`` and ``--compare-memory``, on small generated clusters.

The comparison's numbers must be those of separate demo runs with the same seed and
options (each run is deterministic: a seeded split, sampler and network); the memory's
run must really have used a memory (its state after training, and a loss history that
differs from the run without one).
"""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from helpers import clusters_npz  # noqa: E402

import tftriplet_cli as cli  # noqa: E402
from tftriplet_cli import demo  # noqa: E402

# 6 classes of 30: --split classes trains on 4 classes (120 samples), so P x K = 4 x 4
# gives 8 batches an epoch.
SMALL = {"split": "classes", "classes_per_batch": 4, "samples_per_class": 4, "verbose": 0}
STEPS_PER_EPOCH = 8


def quiet(*_):
    pass


def test_a_memory_run_fills_its_memory_and_trains_differently(tmp_path):
    data = clusters_npz(tmp_path / "mine.npz")
    printed = []
    with_memory = demo.run_demo(out=str(tmp_path / "memory"), data=data, epochs=2,
                                memory_size=1000, memory_warmup=3, print_fn=printed.append,
                                **SMALL)
    alone = demo.run_demo(out=str(tmp_path / "alone"), data=data, epochs=2, print_fn=quiet,
                          **SMALL)
    steps = 2 * STEPS_PER_EPOCH
    # After the 3 warm-up steps, each 16-sample batch entered the memory of 1000.
    assert with_memory["memory"] == {"size": 1000, "warmup": 3, "filled": (steps - 3) * 16,
                                     "steps": steps}
    assert alone["memory"] is None
    assert with_memory["config"]["memory_size"] == 1000
    assert with_memory["config"]["memory_warmup"] == 3
    assert alone["config"]["memory_size"] == alone["config"]["memory_warmup"] == 0
    assert any("memory_size=1000, memory_warmup=3" in line for line in printed)
    # The same batches and initial weights: only the memory differs, and it changes the
    # loss the network is trained on.
    assert with_memory["history"]["loss"] != pytest.approx(alone["history"]["loss"])
    written = json.loads((tmp_path / "memory" / "results.json").read_text())
    assert written["memory"] == with_memory["memory"]


def test_a_small_memory_stays_full(tmp_path):
    results = demo.run_demo(out=str(tmp_path), data=clusters_npz(tmp_path / "mine.npz"),
                            epochs=1, memory_size=40, print_fn=quiet, **SMALL)
    assert results["memory"]["filled"] == 40
    assert results["memory"]["steps"] == STEPS_PER_EPOCH


def test_compare_memory_reports_the_runs_of_separate_demos(tmp_path, capsys):
    data = clusters_npz(tmp_path / "mine.npz")
    out = tmp_path / "compare"
    argv = ["demo", "--data", data, "--split", "classes", "--classes-per-batch", "4",
            "--samples-per-class", "4", "--epochs", "1", "--memory", "1000",
            "--memory-warmup", "2", "--compare-memory", "--seed", "3,1", "--quiet",
            "--out", str(out)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["seeds"] == [3, 1]
    assert comparison["steps"] == STEPS_PER_EPOCH
    assert [(r["seed"], r["memory_size"], r["memory_warmup"]) for r in comparison["runs"]] == [
        (3, 0, 0), (3, 1000, 2), (1, 0, 0), (1, 1000, 2)]

    # Each run's numbers are those of the demo run alone with that seed and memory: checked
    # for the second seed's runs, which any state left by earlier runs would change.
    for record in comparison["runs"][2:]:
        alone = demo.run_demo(out=str(tmp_path / "alone"), data=data, epochs=1,
                              seed=record["seed"], memory_size=record["memory_size"],
                              memory_warmup=record["memory_warmup"], print_fn=quiet, **SMALL)
        assert record["after"] == alone["after"]
        assert record["memory"] == alone["memory"]
        written = json.loads((Path(record["out"]) / "results.json").read_text())
        assert Path(record["out"]).parent == out and written["after"] == alone["after"]

    for key in ("recall@1", "map@r"):
        summary = comparison["metrics"][key]
        for which, memory in (("no_memory", 0), ("memory", 1000)):
            values = [r["after"][key] for r in comparison["runs"] if r["memory_size"] == memory]
            assert summary[which]["per_seed"] == values
            assert summary[which]["mean"] == pytest.approx(np.mean(values))
            assert summary[which]["std"] == pytest.approx(np.std(values, ddof=1))
        diff = np.subtract(summary["memory"]["per_seed"], summary["no_memory"]["per_seed"])
        assert summary["difference"]["per_seed"] == pytest.approx(diff)

    # The printed table holds the same numbers: per seed, then mean and std.
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()
            if line.split() and line.split()[0] in ("3", "1", "mean", "std")}
    metrics = comparison["metrics"]
    columns = [metrics[k][w] for k in ("recall@1", "map@r") for w in ("no_memory", "memory")]
    for name, index in (("3", 0), ("1", 1), ("mean", "mean"), ("std", "std")):
        expected = [c["per_seed"][index] if isinstance(index, int) else c[index]
                    for c in columns]
        assert [float(v) for v in rows[name]] == [round(v, 3) for v in expected]
    assert "memory 1000 (warm-up 2 steps)" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--compare-memory"], "needs a memory to compare with: give --memory N"),
        (["--seed", "0,1"], "several seeds only with --compare-memory"),
        (["--memory", "-1"], "--memory must be a whole number >= 0; got -1"),
        (["--memory-warmup", "5"], "--memory-warmup 5 needs a memory"),
        (["--compare-memory", "--memory", "8", "--seed", "0,0"], "distinct seeds; got [0, 0]"),
        (["--compare-memory", "--memory", "8", "--tensorboard", "tb"], "drop --tensorboard"),
        (["--classes-per-batch", "1"], "--classes-per-batch 1 --samples-per-class 8: "
                                       "classes_per_batch (P) must be in 2..10"),
    ],
)
def test_bad_memory_options_exit_2_with_the_reason(argv, message, tmp_path, capsys):
    assert cli.main(["demo", *argv, "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_seed_must_be_integers(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["demo", "--seed", "one"])
    assert exited.value.code == 2
    assert "expected seeds as comma-separated integers; got 'one'" in capsys.readouterr().err
