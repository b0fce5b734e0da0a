"""Keras callbacks for metric learning: retrieval metrics on a validation set per epoch."""

from __future__ import annotations

import keras
import numpy as np

from tftriplet.inputs import check_class_ids
from tftriplet.retrieval import retrieval_metrics


class RetrievalEvaluation(keras.callbacks.Callback):
    """Recall@k and MAP@R of the model's embeddings of a validation set, after every epoch.

    At the end of each epoch the model embeds `x` (`model.predict`) and
    `tftriplet.retrieval_metrics` ranks the embeddings by Euclidean distance, either
    leave-one-out (each validation sample against the others) or, with `gallery`, each
    validation sample (query) against the embedded gallery. The results are added to the
    epoch's logs as `"<prefix>recall@<k>"` for each `k` in `ks` and
    `"<prefix>map@r"`, so `History`, `TensorBoard`, `EarlyStopping` and
    `ModelCheckpoint(monitor=...)` see them, provided they come *after* this callback in
    the `callbacks` list (Keras calls callbacks in order; `History` always comes last).

    `recall@k` is the fraction of queries with a sample of their class among their `k`
    nearest neighbours; `MAP@R = (1/R) sum_{i<=R} P(i) rel(i)` with `R` the number of
    relevant samples of the query's class (Musgrave et al. 2020). Both grow with quality,
    so monitor them with `mode="max"`.

    `history` keeps every epoch's results. With `tftriplet.BackupAndRestore` it comes back
    from a backup, so after a restart it holds the epochs before the interruption too, and
    `last_results` is what the uninterrupted run ends with (every value is a function of the
    weights at the end of its epoch, which the restored run reproduces).

    Args:
        x: validation inputs, anything `model.predict` takes (an array `(N, ...)`).
        y: integer class ids `(N,)` or `(N, 1)` of `x`.
        gallery: optional `(x_gallery, y_gallery)`; given, `x` are the queries and are
            ranked against the gallery, otherwise leave-one-out.
        ks: the `k` of each recall@k (default `(1, 5)`).
        batch_size: batch size of `model.predict`.
        chunk_size: queries ranked at once; memory `O(chunk_size * N)`.
        prefix: prefix of the log keys.

    Example:
        ```python
        evaluation = tftriplet.RetrievalEvaluation(x_val, y_val, ks=(1, 5))
        stop = keras.callbacks.EarlyStopping("val_recall@1", mode="max", patience=3)
        model.fit(batches, epochs=50, callbacks=[evaluation, stop])
        ```

    Reference:
        Musgrave, Belongie, Lim, "A Metric Learning Reality Check", ECCV 2020, section 3.2.
    """

    def __init__(
        self,
        x,
        y,
        *,
        gallery=None,
        ks=(1, 5),
        batch_size=256,
        chunk_size=512,
        prefix="val_",
    ):
        super().__init__()
        self.x = x
        self.y = check_class_ids(y, "y", num_rows=_num_rows(x), rows="x")
        if gallery is not None:
            if not (isinstance(gallery, (tuple, list)) and len(gallery) == 2):
                raise ValueError(
                    f"gallery must be a pair (x_gallery, y_gallery); got {type(gallery).__name__}."
                )
            gallery_y = check_class_ids(
                gallery[1], "gallery labels", num_rows=_num_rows(gallery[0]), rows="gallery inputs"
            )
            gallery = (gallery[0], gallery_y)
        self.gallery = gallery
        self.ks = tuple(int(k) for k in ks)
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be a non-empty list of k >= 1; got {ks}.")
        self.batch_size = int(batch_size)
        self.chunk_size = int(chunk_size)
        self.prefix = str(prefix)
        #: the latest results (`retrieval_metrics`'s dict, with `num_queries`).
        self.last_results = None
        #: `{epoch: results}` of every epoch evaluated, restored from a backup.
        self.history = {}
        self.resume_key = f"RetrievalEvaluation:{self.prefix}"

    def log_keys(self):
        """The keys this callback adds to the logs, e.g. `["val_recall@1", "val_map@r"]`."""
        return [f"{self.prefix}recall@{k}" for k in self.ks] + [f"{self.prefix}map@r"]

    def evaluate(self):
        """Embed the validation data with the current model; return `retrieval_metrics`."""
        queries = self._embed(self.x)
        if queries.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"the model embedded {queries.shape[0]} samples of x but y has "
                f"{self.y.shape[0]} labels."
            )
        kwargs = {}
        if self.gallery is not None:
            kwargs = {
                "gallery_embeddings": self._embed(self.gallery[0]),
                "gallery_labels": self.gallery[1],
            }
        return retrieval_metrics(queries, self.y, ks=self.ks, chunk_size=self.chunk_size, **kwargs)

    def on_epoch_end(self, epoch, logs=None):
        self.last_results = self.evaluate()
        self.history[int(epoch)] = self.last_results
        if logs is not None:
            for key in self.log_keys():
                logs[key] = self.last_results[key[len(self.prefix) :]]

    # The state protocol of tftriplet.BackupAndRestore (tftriplet/resume.py).

    def resume_config(self):
        gallery = None if self.gallery is None else int(self.gallery[1].shape[0])
        return {"ks": list(self.ks), "num_queries": int(self.y.shape[0]), "gallery": gallery}

    def resume_state(self):
        return {"history": {str(epoch): results for epoch, results in self.history.items()}}

    def resume_restore(self, state):
        self.history = {int(epoch): r for epoch, r in state.get("history", {}).items()}
        self.last_results = self.history[max(self.history)] if self.history else None

    def _embed(self, x):
        embeddings = self.model.predict(x, batch_size=self.batch_size, verbose=0)
        embeddings = np.asarray(keras.ops.convert_to_numpy(embeddings))
        if embeddings.ndim != 2:
            raise ValueError(
                f"the model's outputs must be embeddings (N, D); got shape {embeddings.shape}."
            )
        return embeddings


def _num_rows(x):
    """The number of rows of an array-like `x`; `None` for what has no shape (a dataset)."""
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) < 1 or shape[0] is None:
        return None
    return int(shape[0])
