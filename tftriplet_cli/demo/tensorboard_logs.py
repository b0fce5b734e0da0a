"""`tftriplet demo --tensorboard DIR`: the check that TensorBoard can be written, and the
held-out embeddings for TensorBoard's embedding projector.

The curves and the per-epoch retrieval metrics are written by `keras.callbacks.TensorBoard`
during `fit` (`tftriplet_cli.demo.training`).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from tftriplet_cli.demo.options import DemoError


def check_available():
    """Raise `DemoError` with the fix when the tensorboard package is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        # keras.callbacks.TensorBoard writes scalars with tf.summary, which needs it.
        raise DemoError(
            "--tensorboard needs the tensorboard package (and tensorflow): "
            "pip install tensorboard, or pip install 'tftriplet[demo]'."
        )


def write_held_out(log_dir, trained, labels):
    """Write the held-out embeddings after and before training for the projector, in the run
    folder of the held-out metrics (`<log_dir>/validation`); return the config's path.

    TensorBoard's projector reads a `projector_config.pbtxt` in each run folder (one with
    event files), and in the log folder itself only when it has no runs.
    """
    return write_projector(
        os.path.join(log_dir, "validation"),
        {
            "held_out_after_training": trained.after_embeddings,
            "held_out_before_training": trained.before_embeddings,
        },
        labels,
    )


def write_projector(log_dir, embeddings, labels):
    """Write embeddings and their labels for TensorBoard's embedding projector.

    Writes `<name>.tsv` (one embedding per line, tab-separated), `metadata.tsv` (one
    label per line; a single column has no header row) and `projector_config.pbtxt`
    (a text `ProjectorConfig` whose `tensor_path` entries point at the TSV files, so the
    projector needs no checkpoint), all in `log_dir`. Returns the config's path.

    Args:
        log_dir: a run folder under the folder TensorBoard is started on (or that folder
            itself when it has no runs).
        embeddings: dict `name -> array (N, D)`, the same `N` rows for every name.
        labels: class ids `(N,)`, one per row.
    """
    os.makedirs(log_dir, exist_ok=True)
    np.savetxt(os.path.join(log_dir, "metadata.tsv"), np.asarray(labels), fmt="%d")
    entries = []
    for name, values in embeddings.items():
        values = np.asarray(values, dtype=np.float32)
        if values.ndim != 2 or values.shape[0] != len(labels):
            raise ValueError(
                f"embeddings {name!r} must have shape (N, D) with N={len(labels)}; got "
                f"{values.shape}."
            )
        path = f"{name}.tsv"
        # 9 significant digits round-trip float32 exactly.
        np.savetxt(os.path.join(log_dir, path), values, fmt="%.9g", delimiter="\t")
        entries.append(
            "embeddings {\n"
            f'  tensor_name: "{name}"\n'
            f'  tensor_path: "{path}"\n'
            '  metadata_path: "metadata.tsv"\n'
            f"  tensor_shape: {values.shape[0]}\n"
            f"  tensor_shape: {values.shape[1]}\n"
            "}\n"
        )
    config = os.path.join(log_dir, "projector_config.pbtxt")
    with open(config, "w", encoding="utf-8") as f:
        f.write("".join(entries))
    return config
