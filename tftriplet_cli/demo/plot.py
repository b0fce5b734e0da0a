"""The demo's figure: the held-out embeddings before and after training, and the curves."""

from __future__ import annotations

import numpy as np


def pca_2d(embeddings):
    """The first two principal components, signs fixed so the largest loading is positive."""
    centred = embeddings - embeddings.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:2]
    signs = np.sign(components[np.arange(2), np.argmax(np.abs(components), axis=1)])
    return centred @ (components * signs[:, None]).T


def plot_results(path, title, labels, trained):
    """Write a 2 x 2 figure to `path`: PCA of the held-out embeddings before and after
    training (coloured by `labels`), the loss with the held-out retrieval per epoch, and the
    triplet fractions per epoch.

    Args:
        path: the PNG to write.
        title: the figure's title.
        labels: class ids `(N_test,)` of the held-out rows.
        trained: a `tftriplet_cli.demo.training.Trained`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, axes = plt.subplots(2, 2, figsize=(12, 10), constrained_layout=True)
    fig.suptitle(title, fontsize=14)
    _embeddings_panel(axes[0, 0], trained.before_embeddings, labels, cmap, trained.before,
                      "before training")
    _embeddings_panel(axes[0, 1], trained.after_embeddings, labels, cmap, trained.after,
                      "after training")
    if len(classes) <= 20:
        axes[0, 1].legend(
            title="class", loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2
        )
    epochs = np.arange(1, len(trained.history["loss"]) + 1)
    _loss_panel(axes[1, 0], epochs, trained.history)
    _fractions_panel(axes[1, 1], epochs, trained.history)
    for ax in axes[1]:
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _embeddings_panel(ax, embeddings, labels, cmap, values, when):
    """The PCA of `embeddings`, one colour a class, titled with recall@1 and MAP@R."""
    points = pca_2d(embeddings)
    for i, c in enumerate(np.unique(labels)):
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


def _loss_panel(ax, epochs, history):
    """The training loss per epoch, and the held-out retrieval (`val_*`) on a second axis."""
    ax.plot(epochs, history["loss"], marker="o", color="tab:blue")
    ax.set_title("training loss and held-out retrieval per epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (mean over the epoch's batches)")
    ax.grid(alpha=0.3)
    retrieval = [key for key in history if key.startswith("val_")]
    if retrieval:  # RetrievalEvaluation's per-epoch values, on their own axis
        twin = ax.twinx()
        colours = ("tab:orange", "tab:green", "tab:purple", "tab:red", "tab:brown")
        for key, colour in zip(retrieval, colours * len(retrieval), strict=False):
            twin.plot(epochs, history[key], "--.", color=colour, label=key)
        twin.set_ylabel("held-out retrieval (dashed)")
        twin.legend(loc="center right")


def _fractions_panel(ax, epochs, history):
    """The training metrics per epoch: the triplet fractions of the training batches."""
    fractions = [key for key in history if key != "loss" and not key.startswith("val_")]
    for key in fractions:
        ax.plot(epochs, history[key], marker="o", label=key.replace("_", " "))
    ax.set_title("triplets in the training batches")
    ax.set_xlabel("epoch")
    ax.set_ylabel("fraction of valid triplets")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if fractions:
        ax.legend()
