"""One demo run: data, split, training, evaluation, and the files it writes."""

from __future__ import annotations

import json
import os
import time

from tftriplet_cli.demo import report, tensorboard_logs
from tftriplet_cli.demo.data import load_data
from tftriplet_cli.demo.evaluation import format_table
from tftriplet_cli.demo.model import make_loss, make_metrics
from tftriplet_cli.demo.options import DemoError, Settings
from tftriplet_cli.demo.plot import plot_results
from tftriplet_cli.demo.split import split_data
from tftriplet_cli.demo.training import pk_batches, train


def run_demo(*, print_fn=print, **options):
    """Run the demo; return the dict written to `<out>/results.json`.

    Prints what it does (through `print_fn`), trains, prints the retrieval table, and writes
    `<out>/embeddings.png` and `<out>/results.json`. With `tensorboard` (a folder), also
    writes TensorBoard logs there: the training curves and the per-epoch retrieval metrics
    (`keras.callbacks.TensorBoard`), and the held-out embeddings before and after training
    with their labels for the embedding projector (`tensorboard_logs.write_held_out`).

    Args:
        print_fn: called with each line the demo prints.
        **options: the fields of `Settings` (`out`, `data`, `epochs`, `seed`, `strategy`,
            `split`, `margin`, ...), each defaulting as there.

    Raises:
        DemoError: on unusable data or options, with a message for the user.

    Example:
        ```python
        results = run_demo(out="demo-out", epochs=3, split="classes")
        results["after"]["map@r"]
        ```
    """
    start = time.perf_counter()
    settings = Settings(**options)
    if settings.epochs < 1:
        raise DemoError(f"--epochs must be >= 1; got {settings.epochs}.")
    # an unknown strategy or a bad memory fails before any work
    loss = make_loss(settings.strategy, settings.margin, settings.memory_size,
                     settings.memory_warmup)
    if settings.tensorboard is not None:
        tensorboard_logs.check_available()
    metrics = make_metrics(settings.margin)
    data = split_data(*load_data(settings.data), settings.split, settings.seed)
    batches = pk_batches(data, settings)
    for line in report.header_lines(data, loss, batches, settings):
        print_fn(line)
    trained = train(data, batches, loss, metrics, settings)
    print_fn(
        f"\nleave-one-out retrieval on the held-out data ({trained.after['num_queries']} "
        "queries):"
    )
    print_fn(format_table(trained.rows()))

    os.makedirs(settings.out, exist_ok=True)
    png_path = os.path.join(settings.out, "embeddings.png")
    json_path = os.path.join(settings.out, "results.json")
    plot_results(png_path, report.plot_title(data, loss, settings), data.y_test, trained)
    results = report.results_record(data, loss, metrics, batches, trained, settings)
    results["seconds"] = round(time.perf_counter() - start, 2)  # printed as stored
    results["files"] = {"png": png_path, "json": json_path}
    if settings.tensorboard is not None:
        results["files"]["tensorboard"] = settings.tensorboard
        results["files"]["projector_config"] = tensorboard_logs.write_held_out(
            settings.tensorboard, trained, data.y_test
        )
    with open(json_path, "w") as f:
        json.dump(results, f, indent=2)
    print_fn(f"\nwrote {png_path} and {json_path}; finished in {results['seconds']:.1f} s")
    if settings.tensorboard is not None:
        print_fn(
            f"TensorBoard logs and projector files in {settings.tensorboard}: "
            f"tensorboard --logdir {settings.tensorboard}"
        )
    return results
