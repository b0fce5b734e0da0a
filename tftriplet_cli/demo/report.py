"""What the demo prints and what it writes to `results.json`: the same numbers."""

from __future__ import annotations

import os


def header_lines(data, loss, batches, settings):
    """The lines printed before training: the data, the split, the loss and the batches."""
    lines = [
        f"tftriplet demo: {data.source}",
        f"split ({data.mode}): {data.description}",
        f"training on {len(data.y_train)} samples: {loss_text(loss, settings)}, "
        f"batches of P={batches.classes_per_batch} classes x "
        f"K={settings.samples_per_class} samples, {batches.batches_per_epoch} batches/epoch, "
        f"{settings.epochs} epochs, seed {settings.seed}",
    ]
    if batches.undersized_classes:
        lines.append(
            f"note: classes with fewer than K={settings.samples_per_class} training samples "
            f"are padded by sampling with replacement: {batches.undersized_classes}"
        )
    return lines


def loss_text(loss, settings):
    """The loss as the demo names it: its class, its margin, and its memory if any."""
    options = [f"margin={settings.margin}"]
    if settings.memory_size:
        options.append(f"memory_size={settings.memory_size}")
    if settings.memory_warmup:
        options.append(f"memory_warmup={settings.memory_warmup}")
    return f"{type(loss).__name__}({', '.join(options)})"


def plot_title(data, loss, settings):
    """The figure's title: the loss, the data, the run, and what was evaluated."""
    name = "digits" if settings.data is None else os.path.basename(settings.data)
    evaluated = (
        "samples of the training classes" if data.mode == "samples" else "samples of unseen classes"
    )
    return (
        f"tftriplet demo: {loss_text(loss, settings)} on "
        f"{name}, {settings.epochs} epochs, seed {settings.seed}\n"
        f"evaluated on {len(data.y_test)} held-out {evaluated}"
    )


def results_record(data, loss, metrics, batches, trained, settings):
    """The JSON's record up to the retrieval results; the caller adds `seconds` and
    `files`."""
    import keras

    return {
        "data": data.source,
        "split": {
            "mode": data.mode,
            "description": data.description,
            "train_samples": int(len(data.y_train)),
            "test_samples": int(len(data.y_test)),
            "train_classes": data.train_classes.tolist(),
            "test_classes": data.test_classes.tolist(),
        },
        "config": {
            "strategy": settings.strategy,
            "loss": type(loss).__name__,
            "metrics": [type(m).__name__ for m in metrics],
            "margin": settings.margin,
            "memory_size": settings.memory_size,
            "memory_warmup": settings.memory_warmup,
            "epochs": settings.epochs,
            "seed": settings.seed,
            "classes_per_batch": batches.classes_per_batch,
            "samples_per_class": settings.samples_per_class,
            "batches_per_epoch": batches.batches_per_epoch,
            "embedding_dim": settings.embedding_dim,
            "learning_rate": settings.learning_rate,
            "keras_backend": keras.backend.backend(),
        },
        "history": trained.history,
        "input_features": trained.input_features,
        "before": trained.before,
        "after": trained.after,
        "memory": trained.memory,
    }
