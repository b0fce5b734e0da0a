"""``tftriplet demo``: train a small embedding network end to end and show what it learned.

Loads scikit-learn's bundled handwritten digits (nothing is downloaded) or the user's own
``--data file.npz`` (arrays ``x`` and ``y``), holds out test data, trains a small Keras
embedding network with a triplet loss on P x K batches (``tftriplet.PKBatches``), and
evaluates leave-one-out retrieval (recall@1, recall@5, MAP@R) on the held-out data before
training and after every epoch (``tftriplet.RetrievalEvaluation``). Writes a PNG (2-D
projections of the test embeddings next to the training curves) and a JSON with every printed
number to ``--out``; with ``--tensorboard DIR`` also the curves, the per-epoch retrieval
metrics and the held-out embeddings for TensorBoard's projector.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import time

import numpy as np

from tftriplet import (
    BatchAllTripletLoss,
    BatchHardTripletLoss,
    FractionPositiveTriplets,
    PKBatches,
    RetrievalEvaluation,
    SemiHardTripletLoss,
    TripletDifficulty,
)
from tftriplet.retrieval import retrieval_metrics

# --strategy name -> loss class; every class takes ``margin=``.
STRATEGIES = {
    "batch_all": BatchAllTripletLoss,
    "batch_hard": BatchHardTripletLoss,
    "semi_hard": SemiHardTripletLoss,
}
# Metrics, each built with ``margin=``. A metric's result may be a scalar or a dict of
# scalars (Keras logs each key of a dict result as its own entry).
METRICS = (FractionPositiveTriplets, TripletDifficulty)

SPLITS = ("samples", "classes")
TEST_FRACTION = 0.3
RECALL_KS = (1, 5)


class DemoError(ValueError):
    """A problem with the demo's input that the user can fix; the CLI prints its message."""


# ----------------------------------------------------------------------------------- data


def load_digits_data():
    """scikit-learn's bundled 8x8 digits: ``x`` (1797, 64) float32 in 0..16, ``y`` int32."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise DemoError(
            "the demo's default data needs scikit-learn: pip install 'tftriplet[demo]' "
            "(or pass --data file.npz)"
        ) from err
    digits = load_digits()
    return digits.data.astype(np.float32), digits.target.astype(np.int32)


def load_npz(path):
    """Load and check a user's ``.npz`` with ``x`` (N, ...) numeric and ``y`` (N,) class ids.

    ``x`` of more than two dimensions is flattened to ``(N, D)``. ``y`` may be integers or
    floats holding integers.

    Raises:
        DemoError: naming what was found and what is expected.
    """
    if not os.path.isfile(path):
        raise DemoError(f"--data {path}: no such file.")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DemoError(
            f"--data {path}: could not read it as an .npz archive of numeric arrays ({err})."
        ) from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DemoError(
            f"--data {path}: expected an .npz archive (np.savez) holding arrays 'x' and 'y'; "
            f"got a single .npy array of shape {archive.shape}."
        )
    with archive:
        found = sorted(archive.files)
        missing = [name for name in ("x", "y") if name not in found]
        if missing:
            raise DemoError(
                f"--data {path}: expected arrays 'x' (N, D) and 'y' (N,); missing {missing}, "
                f"found {found}."
            )
        try:
            x = archive["x"]
            y = archive["y"]
        except ValueError as err:  # object arrays need pickle, which is never loaded
            raise DemoError(
                f"--data {path}: 'x' and 'y' must be numeric arrays, not object arrays ({err})."
            ) from err
    return check_arrays(x, y, source=f"--data {path}")


def check_arrays(x, y, source="data"):
    """Check ``x`` and ``y`` as the demo needs them; return ``(x float32 (N, D), y int32)``."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.dtype.kind not in "iuf" or y.dtype.kind not in "iuf":
        raise DemoError(
            f"{source}: 'x' and 'y' must be numeric; got x of dtype {x.dtype} and y of "
            f"dtype {y.dtype}."
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DemoError(
            f"{source}: 'y' must be a 1-D array of class ids (N,); got shape {y.shape} "
            "(one-hot labels? pass y.argmax(axis=1))."
        )
    if x.ndim < 2 or x.shape[0] != y.shape[0]:
        raise DemoError(
            f"{source}: 'x' must have shape (N, D) with one row per label (N={y.shape[0]}); "
            f"got shape {x.shape}."
        )
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise DemoError(
                f"{source}: 'y' must hold integer class ids; got floats that are not whole numbers."
            )
        if np.any(np.abs(y) > 2**31 - 1):
            raise DemoError(f"{source}: 'y' class ids must fit in int32.")
    elif np.any(y > 2**31 - 1) or np.any(y < -(2**31)):
        raise DemoError(f"{source}: 'y' class ids must fit in int32.")
    x = x.reshape(x.shape[0], -1).astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise DemoError(f"{source}: 'x' contains NaN or inf.")
    if len(np.unique(y)) < 2:
        raise DemoError(f"{source}: 'y' must hold at least 2 classes; got {len(np.unique(y))}.")
    return x, y.astype(np.int32)


def split_indices(y, mode, seed, test_fraction=TEST_FRACTION):
    """Train and test row indices.

    ``"samples"``: per class, a random ``test_fraction`` of its samples (at least one, when
    the class has two or more) is held out; train and test share their classes.
    ``"classes"``: the last ``ceil(test_fraction * C)`` classes in sorted order are held out
    entirely (at least 2), as in Musgrave et al. 2020; this tests generalisation to unseen
    classes.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    if mode == "samples":
        test = np.zeros(len(y), dtype=bool)
        for c in classes:
            members = np.flatnonzero(y == c)
            if len(members) >= 2:
                count = max(1, int(round(test_fraction * len(members))))
                test[rng.choice(members, size=count, replace=False)] = True
    elif mode == "classes":
        num_test = max(2, math.ceil(test_fraction * len(classes)))
        if len(classes) - num_test < 2:
            raise DemoError(
                f"--split classes needs at least 4 classes (2 to train on, 2 held out); "
                f"the data has {len(classes)}. Use --split samples."
            )
        test = np.isin(y, classes[-num_test:])
    else:
        raise DemoError(f"--split must be one of {SPLITS}; got {mode!r}.")
    train_idx, test_idx = np.flatnonzero(~test), np.flatnonzero(test)
    if len(np.unique(y[train_idx])) < 2:
        raise DemoError("the training split holds fewer than 2 classes; nothing to contrast.")
    test_counts = np.unique(y[test_idx], return_counts=True)[1]
    if not np.any(test_counts >= 2):
        raise DemoError(
            "the held-out split has no class with 2 or more samples, so retrieval cannot be "
            "evaluated; give each class more samples."
        )
    return train_idx, test_idx


# ------------------------------------------------------------------- strategies and model


def make_loss(strategy, margin):
    """The loss of ``strategy`` (a key of :data:`STRATEGIES`), built with ``margin``."""
    if strategy not in STRATEGIES:
        raise DemoError(f"--strategy must be one of {sorted(STRATEGIES)}; got {strategy!r}.")
    try:
        return STRATEGIES[strategy](margin=margin)
    except ValueError as err:
        raise DemoError(f"--margin {margin}: {err}") from err


def make_metrics(margin):
    """One instance of each metric of :data:`METRICS`, built with ``margin``."""
    return [cls(margin=margin) for cls in METRICS]


def build_model(input_dim, embedding_dim=32, hidden_units=128):
    """Dense -> ReLU -> Dense -> L2 normalisation: embeddings on the unit sphere."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(input_dim,)),
            keras.layers.Dense(hidden_units, activation="relu", name="hidden"),
            keras.layers.Dense(embedding_dim, name="projection"),
            keras.layers.UnitNormalization(name="l2_normalize"),
        ],
        name="embedding_network",
    )


# ------------------------------------------------------------------------------- running


def run_demo(
    out="tftriplet-demo",
    data=None,
    epochs=15,
    seed=0,
    strategy="batch_all",
    split="samples",
    margin=0.2,
    classes_per_batch=8,
    samples_per_class=8,
    embedding_dim=32,
    learning_rate=1e-3,
    tensorboard=None,
    verbose=1,
    print_fn=print,
):
    """Run the demo; return the dict written to ``<out>/results.json``.

    With ``tensorboard`` (a folder), also writes TensorBoard logs there: the training curves
    and the per-epoch retrieval metrics (``keras.callbacks.TensorBoard``), and the held-out
    embeddings before and after training with their labels for the embedding projector
    (:func:`write_projector`).

    Raises:
        DemoError: on unusable data or options, with a message for the user.
    """
    import keras

    start = time.perf_counter()
    if epochs < 1:
        raise DemoError(f"--epochs must be >= 1; got {epochs}.")
    loss = make_loss(strategy, margin)  # an unknown strategy fails before any work
    if tensorboard is not None and importlib.util.find_spec("tensorboard") is None:
        # keras.callbacks.TensorBoard writes scalars with tf.summary, which needs it.
        raise DemoError(
            "--tensorboard needs the tensorboard package (and tensorflow): "
            "pip install tensorboard, or pip install 'tftriplet[demo]'."
        )
    metrics = make_metrics(margin)
    if data is None:
        x, y = load_digits_data()
        source = "scikit-learn digits (1797 8x8 images, 10 classes; bundled, not downloaded)"
    else:
        x, y = load_npz(data)
        source = (
            f"{data} ({x.shape[0]} samples, {x.shape[1]} features, {len(np.unique(y))} classes)"
        )
    train_idx, test_idx = split_indices(y, split, seed)
    x_train, y_train, y_test = x[train_idx], y[train_idx], y[test_idx]
    # Standardise with statistics of the training rows only.
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0
    x_train = (x_train - mean) / std
    x_test = (x[test_idx] - mean) / std
    train_classes = np.unique(y_train)
    test_classes = np.unique(y_test)
    if split == "samples":
        split_text = (
            f"held out {len(test_idx)} samples ({TEST_FRACTION:.0%} of each class); train "
            f"and test share the {len(train_classes)} classes"
        )
    else:
        split_text = (
            f"held out the classes {_short_list(test_classes)} entirely ({len(test_idx)} "
            f"samples); training sees only {_short_list(train_classes)}"
        )

    p = min(classes_per_batch, len(train_classes))
    batches = PKBatches(
        x_train,
        y_train,
        classes_per_batch=p,
        samples_per_class=samples_per_class,
        batches_per_epoch=max(1, math.ceil(len(train_idx) / (p * samples_per_class))),
        seed=seed,
    )

    print_fn(f"tftriplet demo: {source}")
    print_fn(f"split ({split}): {split_text}")
    print_fn(
        f"training on {len(train_idx)} samples: {type(loss).__name__}(margin={margin}), "
        f"batches of P={p} classes x K={samples_per_class} samples, "
        f"{batches.batches_per_epoch} batches/epoch, {epochs} epochs, seed {seed}"
    )
    if batches.undersized_classes:
        print_fn(
            f"note: classes with fewer than K={samples_per_class} training samples are padded "
            f"by sampling with replacement: {batches.undersized_classes}"
        )

    keras.utils.set_random_seed(seed)
    model = build_model(x.shape[1], embedding_dim=embedding_dim)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)

    # Recall@k and MAP@R of the held-out data after every epoch, in the logs as
    # val_recall@1, val_recall@5 and val_map@r (so in History and TensorBoard too).
    evaluation = RetrievalEvaluation(x_test, y_test, ks=RECALL_KS)
    callbacks = [evaluation]
    if tensorboard is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=tensorboard))

    def embed():
        return np.asarray(keras.ops.convert_to_numpy(model.predict(x_test, verbose=0)))

    input_space = retrieval_metrics(x_test, y_test, ks=RECALL_KS)
    before_embeddings = embed()
    before = retrieval_metrics(before_embeddings, y_test, ks=RECALL_KS)
    history = model.fit(batches, epochs=epochs, verbose=verbose, callbacks=callbacks).history
    after_embeddings = embed()
    after = evaluation.last_results  # the last epoch's evaluation: the trained model
    history = {key: [float(v) for v in values] for key, values in history.items()}

    rows = [
        ("input features (no network)", input_space),
        ("before training", before),
        ("after training", after),
    ]
    table = format_table(rows)
    print_fn(f"\nleave-one-out retrieval on the held-out data ({after['num_queries']} queries):")
    print_fn(table)

    os.makedirs(out, exist_ok=True)
    png_path = os.path.join(out, "embeddings.png")
    json_path = os.path.join(out, "results.json")
    title = (
        f"tftriplet demo: {type(loss).__name__}(margin={margin}) on "
        f"{'digits' if data is None else os.path.basename(data)}, {epochs} epochs, seed {seed}\n"
        f"evaluated on {len(test_idx)} held-out "
        + ("samples of the training classes" if split == "samples" else "samples of unseen classes")
    )
    plot_results(
        png_path, title, y_test, before_embeddings, after_embeddings, before, after, history
    )
    seconds = round(time.perf_counter() - start, 2)  # printed and stored as the same number
    results = {
        "data": source,
        "split": {
            "mode": split,
            "description": split_text,
            "train_samples": int(len(train_idx)),
            "test_samples": int(len(test_idx)),
            "train_classes": train_classes.tolist(),
            "test_classes": test_classes.tolist(),
        },
        "config": {
            "strategy": strategy,
            "loss": type(loss).__name__,
            "metrics": [type(m).__name__ for m in metrics],
            "margin": margin,
            "epochs": epochs,
            "seed": seed,
            "classes_per_batch": p,
            "samples_per_class": samples_per_class,
            "batches_per_epoch": batches.batches_per_epoch,
            "embedding_dim": embedding_dim,
            "learning_rate": learning_rate,
            "keras_backend": keras.backend.backend(),
        },
        "history": history,
        "input_features": input_space,
        "before": before,
        "after": after,
        "seconds": seconds,
        "files": {"png": png_path, "json": json_path},
    }
    if tensorboard is not None:
        # In the run folder of the held-out metrics: TensorBoard's projector reads a
        # projector_config.pbtxt in each run folder (one with event files), and in the
        # log folder itself only when it has no runs.
        projector = write_projector(
            os.path.join(tensorboard, "validation"),
            {
                "held_out_after_training": after_embeddings,
                "held_out_before_training": before_embeddings,
            },
            y_test,
        )
        results["files"]["tensorboard"] = tensorboard
        results["files"]["projector_config"] = projector
    with open(json_path, "w") as f:
        json.dump(results, f, indent=2)
    print_fn(f"\nwrote {png_path} and {json_path}; finished in {seconds:.1f} s")
    if tensorboard is not None:
        print_fn(
            f"TensorBoard logs and projector files in {tensorboard}: "
            f"tensorboard --logdir {tensorboard}"
        )
    return results


def write_projector(log_dir, embeddings, labels):
    """Write embeddings and their labels for TensorBoard's embedding projector.

    Writes ``<name>.tsv`` (one embedding per line, tab-separated), ``metadata.tsv`` (one
    label per line; a single column has no header row) and ``projector_config.pbtxt``
    (a text ``ProjectorConfig`` whose ``tensor_path`` entries point at the TSV files, so the
    projector needs no checkpoint), all in ``log_dir``. Returns the config's path.

    Args:
        log_dir: a run folder under the folder TensorBoard is started on (or that folder
            itself when it has no runs).
        embeddings: dict ``name -> array (N, D)``, the same ``N`` rows for every name.
        labels: class ids ``(N,)``, one per row.
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


def _short_list(classes, most=10):
    """``[0, 1, 2]``, or the first ``most`` and a count when there are more."""
    shown = ", ".join(str(c) for c in classes[:most])
    return f"[{shown}]" if len(classes) <= most else f"[{shown}, ...] ({len(classes)} classes)"


def format_table(rows):
    """A plain-text table of ``(name, metrics dict)`` rows."""
    header = ["", *[f"recall@{k}" for k in RECALL_KS], "map@r"]
    width = max(len(name) for name, _ in rows)
    lines = [f"{header[0]:<{width}}  " + "  ".join(f"{h:>8}" for h in header[1:])]
    for name, values in rows:
        cells = [values[f"recall@{k}"] for k in RECALL_KS] + [values["map@r"]]
        lines.append(f"{name:<{width}}  " + "  ".join(f"{c:>8.3f}" for c in cells))
    return "\n".join(lines)


# ------------------------------------------------------------------------------ plotting


def pca_2d(embeddings):
    """The first two principal components, signs fixed so the largest loading is positive."""
    centred = embeddings - embeddings.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:2]
    signs = np.sign(components[np.arange(2), np.argmax(np.abs(components), axis=1)])
    return centred @ (components * signs[:, None]).T


def plot_results(path, title, labels, before, after, metrics_before, metrics_after, history):
    """2 x 2 figure: PCA of the test embeddings before and after, loss, triplet fractions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, axes = plt.subplots(2, 2, figsize=(12, 10), constrained_layout=True)
    fig.suptitle(title, fontsize=14)
    for ax, embeddings, values, when in (
        (axes[0, 0], before, metrics_before, "before training"),
        (axes[0, 1], after, metrics_after, "after training"),
    ):
        points = pca_2d(embeddings)
        for i, c in enumerate(classes):
            chosen = labels == c
            ax.scatter(
                points[chosen, 0],
                points[chosen, 1],
                s=10,
                alpha=0.75,
                color=cmap(i % cmap.N),
                label=str(c),
            )
        ax.set_title(
            f"held-out embeddings {when} (PCA)\nrecall@1 {values['recall@1']:.3f}, "
            f"MAP@R {values['map@r']:.3f}"
        )
        ax.set_xlabel("principal component 1")
        ax.set_ylabel("principal component 2")
        ax.set_aspect("equal", adjustable="datalim")
    if len(classes) <= 20:
        axes[0, 1].legend(
            title="class", loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2
        )

    epochs = np.arange(1, len(history["loss"]) + 1)
    axes[1, 0].plot(epochs, history["loss"], marker="o", color="tab:blue")
    axes[1, 0].set_title("training loss and held-out retrieval per epoch")
    axes[1, 0].set_xlabel("epoch")
    axes[1, 0].set_ylabel("loss (mean over the epoch's batches)")
    axes[1, 0].grid(alpha=0.3)
    retrieval = [key for key in history if key.startswith("val_")]
    if retrieval:  # RetrievalEvaluation's per-epoch values, on their own axis
        twin = axes[1, 0].twinx()
        colours = ("tab:orange", "tab:green", "tab:purple", "tab:red", "tab:brown")
        for key, colour in zip(retrieval, colours * len(retrieval), strict=False):
            twin.plot(epochs, history[key], "--.", color=colour, label=key)
        twin.set_ylabel("held-out retrieval (dashed)")
        twin.legend(loc="center right")

    fractions = [key for key in history if key != "loss" and not key.startswith("val_")]
    for key in fractions:
        axes[1, 1].plot(epochs, history[key], marker="o", label=key.replace("_", " "))
    axes[1, 1].set_title("triplets in the training batches")
    axes[1, 1].set_xlabel("epoch")
    axes[1, 1].set_ylabel("fraction of valid triplets")
    axes[1, 1].set_ylim(bottom=0)
    axes[1, 1].grid(alpha=0.3)
    if fractions:
        axes[1, 1].legend()
    for ax in axes[1]:
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------------- CLI


def add_parser(subparsers):
    """Add the `demo` subcommand to the ``tftriplet`` command line."""
    parser = subparsers.add_parser(
        "demo",
        help="train embeddings on handwritten digits (or --data) and show the result",
        description=(
            "Train a small embedding network with a triplet loss on scikit-learn's bundled "
            "digits (or your --data), evaluate recall@1, recall@5 and MAP@R on held-out data "
            "before and after training, and write a PNG and a JSON to --out."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--data", metavar="FILE.npz", help="train on your own arrays x (N, D) and y (N,)"
    )
    parser.add_argument("--out", default="tftriplet-demo", help="output folder")
    parser.add_argument("--epochs", type=int, default=15, help="training epochs")
    parser.add_argument("--seed", type=int, default=0, help="seed of split, batches, weights")
    parser.add_argument(
        "--strategy",
        choices=sorted(STRATEGIES),
        default="batch_all",
        help="triplet loss: " + ", ".join(f"{k} = {v}" for k, v in STRATEGIES.items()),
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="samples",
        help="hold out 30%% of each class's samples, or 30%% of the classes entirely",
    )
    parser.add_argument("--margin", type=float, default=0.2, help="the loss's margin")
    parser.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="also write TensorBoard logs (curves, retrieval metrics per epoch, projector)",
    )
    parser.add_argument("--quiet", action="store_true", help="no Keras progress bars")
    parser.add_argument(
        "--verbose", action="store_true", help="show the frameworks' logs (TensorFlow start-up)"
    )
    parser.set_defaults(func=main)
    return parser


def main(args):
    """Entry point of ``tftriplet demo``; returns the exit status."""
    import sys

    import keras

    if keras.backend.backend() == "torch":
        import torch

        # The demo's ops are tiny (64-row batches): torch's intra-op threads only contend.
        # Measured on a shared 2-core machine: 600 ms/step with the default, 20 with one.
        torch.set_num_threads(1)
    try:
        run_demo(
            out=args.out,
            data=args.data,
            epochs=args.epochs,
            seed=args.seed,
            strategy=args.strategy,
            split=args.split,
            margin=args.margin,
            tensorboard=args.tensorboard,
            verbose=0 if args.quiet else "auto",
        )
    except DemoError as err:
        print(f"tftriplet demo: error: {err}", file=sys.stderr)
        return 2
    return 0
