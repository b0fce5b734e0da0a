"""The demo's training: P x K batches, `compile` and `fit` with the retrieval callback.

The worked example of docs/training.md: the sampler (`tftriplet.PKBatches`), the loss and
the metrics in `compile`, and `fit` with `tftriplet.RetrievalEvaluation`, which adds the
held-out recall@k and MAP@R to the logs after every epoch.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tftriplet import PKBatches, RetrievalEvaluation, attach_memory
from tftriplet_cli.demo.evaluation import RECALL_KS, retrieval
from tftriplet_cli.demo.model import build_model
from tftriplet_cli.demo.options import DemoError


@dataclasses.dataclass(frozen=True)
class Trained:
    """What a training run gives: its history and the held-out data before and after.

    Attributes:
        history: per-epoch values of each logged key (`loss`, the metrics, `val_recall@1`,
            `val_recall@5`, `val_map@r`), as floats.
        input_features: retrieval on the standardised held-out features, with no network.
        before: retrieval on the held-out embeddings of the untrained network.
        after: retrieval after training (the last epoch's callback values).
        before_embeddings: the held-out embeddings before training `(N_test, D)`.
        after_embeddings: the held-out embeddings after training `(N_test, D)`.
        memory: the loss's cross-batch memory after training (`size`, `warmup`, `filled`,
            `steps`), or `None` without one.
    """

    history: dict
    input_features: dict
    before: dict
    after: dict
    before_embeddings: np.ndarray
    after_embeddings: np.ndarray
    memory: dict | None = None

    def rows(self):
        """The retrieval table's `(name, metrics)` rows, baseline first."""
        return [
            ("input features (no network)", self.input_features),
            ("before training", self.before),
            ("after training", self.after),
        ]


def pk_batches(data, settings):
    """P x K batches of the training rows: P capped at the training classes, enough batches
    per epoch to draw about every training sample once."""
    p = min(settings.classes_per_batch, len(data.train_classes))
    k = settings.samples_per_class
    try:
        return PKBatches(
            data.x_train,
            data.y_train,
            classes_per_batch=p,
            samples_per_class=k,
            batches_per_epoch=max(1, math.ceil(len(data.y_train) / max(p * k, 1))),
            seed=settings.seed,
        )
    except ValueError as err:
        raise DemoError(
            f"--classes-per-batch {settings.classes_per_batch} --samples-per-class {k}: {err}"
        ) from err


def train(data, batches, loss, metrics, settings):
    """Build the network (seeded with `settings.seed`), compile it with `loss` and
    `metrics` (attaching the loss's memory, if it has one), fit it on `batches`, and
    evaluate retrieval on the held-out data before and after. With `settings.tensorboard`,
    `keras.callbacks.TensorBoard` logs there.

    Returns:
        A `Trained`.
    """
    import keras

    keras.utils.set_random_seed(settings.seed)
    model = build_model(data.x_train.shape[1], embedding_dim=settings.embedding_dim)
    model.compile(
        optimizer=keras.optimizers.Adam(settings.learning_rate), loss=loss, metrics=metrics
    )
    if loss.memory is not None:  # carried by fit on every backend, left out of evaluation
        attach_memory(model)
    # Recall@k and MAP@R of the held-out data after every epoch, in the logs as
    # val_recall@1, val_recall@5 and val_map@r (so in History and TensorBoard too).
    evaluation = RetrievalEvaluation(data.x_test, data.y_test, ks=RECALL_KS)
    callbacks = [evaluation]
    if settings.tensorboard is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=settings.tensorboard))

    input_features = retrieval(data.x_test, data.y_test)
    before_embeddings = _embed(model, data.x_test)
    before = retrieval(before_embeddings, data.y_test)
    history = model.fit(
        batches, epochs=settings.epochs, verbose=settings.verbose, callbacks=callbacks
    ).history
    return Trained(
        history={key: [float(v) for v in values] for key, values in history.items()},
        input_features=input_features,
        before=before,
        after=evaluation.last_results,  # the last epoch's evaluation: the trained model
        before_embeddings=before_embeddings,
        after_embeddings=_embed(model, data.x_test),
        memory=_memory_state(loss.memory),
    )


def _memory_state(memory):
    """What the memory held after training, or `None` without one."""
    if memory is None:
        return None
    return {"size": memory.size, "warmup": memory.warmup, "filled": memory.filled,
            "steps": memory.steps}


def _embed(model, x):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(model.predict(x, verbose=0)))
