"""`tftriplet demo`: train a small embedding network end to end and show what it learned.

Loads scikit-learn's bundled handwritten digits (nothing is downloaded) or the user's own
`--data file.npz` (arrays `x` and `y`), holds out test data, trains a small Keras
embedding network with a triplet loss on P x K batches (`tftriplet.PKBatches`), and
evaluates leave-one-out retrieval (recall@1, recall@5, MAP@R) on the held-out data before
training and after every epoch (`tftriplet.RetrievalEvaluation`). Writes a PNG (2-D
projections of the test embeddings next to the training curves) and a JSON with every printed
number to `--out`; with `--tensorboard DIR` also the curves, the per-epoch retrieval
metrics and the held-out embeddings for TensorBoard's projector.

One module a job: `data` (loading and checking), `split` (held-out rows, standardisation),
`model` (network, `--strategy`, metrics), `training` (batches, `fit`), `evaluation`
(retrieval and its table), `report` (printed lines, the JSON record), `plot` (the PNG),
`tensorboard_logs` (`--tensorboard`), `run` (`run_demo`, one run from end to end),
`compare` (`--compare-memory`: runs without and with a cross-batch memory, seed by seed),
`command` (the command line's options), `options` (`Settings`, `DemoError`).
"""

from tftriplet_cli.demo.command import add_parser
from tftriplet_cli.demo.compare import compare_memory
from tftriplet_cli.demo.data import check_arrays, load_digits_data, load_npz
from tftriplet_cli.demo.model import STRATEGIES, build_model, make_loss, make_metrics
from tftriplet_cli.demo.options import DemoError, Settings
from tftriplet_cli.demo.run import run_demo
from tftriplet_cli.demo.split import split_indices
from tftriplet_cli.demo.tensorboard_logs import write_projector

__all__ = [
    "STRATEGIES",
    "DemoError",
    "Settings",
    "add_parser",
    "build_model",
    "check_arrays",
    "compare_memory",
    "load_digits_data",
    "load_npz",
    "make_loss",
    "make_metrics",
    "run_demo",
    "split_indices",
    "write_projector",
]
