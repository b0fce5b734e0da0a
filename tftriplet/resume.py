"""`BackupAndRestore`: backups from which a restarted `fit` ends where the uninterrupted
one would, sampler position and tftriplet's state included.

The state protocol. A backup holds, besides the weights and optimizer state, the position
`(epoch, step)` and one entry per *piece of state*, keyed by the piece's `resume_key`.
A piece is an object given to `BackupAndRestore` (or a loss, or its cross-batch memory
`loss.memory`, found through `model.loss`) with:

- `resume_key`: a unique name (str);
- `resume_config()`: a dict of JSON values that must be equal when a backup is
  restored; a difference is refused with a `tftriplet.backup.BackupError` naming it;
- `resume_state()` (optional): a dict of JSON values and NumPy arrays, the state after
  the last step done; called at every backup;
- `resume_restore(state)` (optional): put that dict back; called after the weights are
  restored, before the first step.

A backup is written after a step (or after the epoch's `on_epoch_end` callbacks), in
the same generation as the weights (`tftriplet.backup`), so the state is always that of
the weights it is restored with. A sampler adds `steps_per_epoch`,
`resume_start_epoch(epoch, first_step, steps_per_epoch)` (serve that epoch from that
step; return after how many steps `fit` must end the epoch, or None when the batches
run out by themselves), `resume_verify()` (raise when the epoch's first batch did not
come from it) and `resume_end()`.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np

from tftriplet import backup
from tftriplet.memory.training import model_losses


class _Stop:
    """`model.stop_training` while this callback ends a resumed epoch early: true for
    Keras' loop, and told apart from the `True` another callback sets to stop for good."""

    def __bool__(self):
        return True


_STOP = _Stop()


class BackupAndRestore(keras.callbacks.Callback):
    """Backs up the training state, and restores it when the same `fit` starts again.

    What `keras.callbacks.BackupAndRestore` does, plus what a restarted run needs to end
    where the uninterrupted run would: the sampler's position (epoch and step) comes back
    with the weights and optimizer state, the interrupted epoch goes on from the step after
    the backup (Keras restarts it from its first batch), and the state of tftriplet's
    objects comes back too (`RetrievalEvaluation`'s per-epoch results, a loss's cross-batch
    memory). A backup from
    another sampler (P, K, seed, batches per epoch, data) or of other state is refused with
    a `tftriplet.backup.BackupError`, and so is a corrupt or partial backup directory;
    backups are written so that a kill at any moment leaves a whole one
    (`tftriplet.backup`).

    Under `fit` the `i`-th batch of epoch `e` is the sampler's batch `(e, i)`, so
    the batches are a pure function of `(seed, epoch, step)`. Backups happen after every
    epoch (`save_freq="epoch"`), or after every global step that is a multiple of
    `save_freq`: an epoch's end is backed up after all callbacks' `on_epoch_end`. Under
    `MultiWorkerMirroredStrategy` only the chief writes; every worker restores.

    A custom training loop drives it through the callback hooks: `set_model(model)` and
    `on_train_begin()` (which restores; then `initial_epoch` is the epoch to start at),
    and per epoch `on_epoch_begin(epoch)` (then `first_step` is its first step: run
    `batches_per_epoch - first_step` steps on a new pass of the dataset),
    `on_train_batch_end(i)` after the `i`-th of them, `on_epoch_end(epoch)`; at the
    end `on_train_end()`. tests/resume/worker_run.py is such a loop, under
    `MultiWorkerMirroredStrategy`.

    Args:
        backup_dir: the directory of the backup (created; keep it for this run only).
        *state: the sampler `fit` trains on (a `tftriplet.PKBatches`, or a dataset made
            by `tftriplet.pk_dataset`, transformed or not), and other objects whose state
            must come back (`tftriplet.RetrievalEvaluation`). A loss object with the same
            state methods (`resume_key`, `resume_config`, `resume_state`,
            `resume_restore`), or a loss's cross-batch memory (`loss.memory`), is found
            through `model.loss`.
        save_freq: `"epoch"`, or a number of steps.
        double_checkpoint: keep the previous backup too, restored when the latest one is
            unreadable.
        delete_checkpoint: delete the backup when `fit` ends.

    Example:
        ```python
        batches = tftriplet.PKBatches(x, y, 8, 4, batches_per_epoch=100, seed=0)
        evaluation = tftriplet.RetrievalEvaluation(x_val, y_val)
        backup = tftriplet.BackupAndRestore("backup", batches, evaluation, save_freq=50)
        model.fit(batches, epochs=20, callbacks=[evaluation, backup])  # doctest: +SKIP
        ```
    """

    def __init__(
        self, backup_dir, *state, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True
    ):
        super().__init__()
        if not backup_dir:
            raise ValueError("backup_dir must be a directory path; got an empty one.")
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq >= 1):
            raise ValueError(f'save_freq must be "epoch" or an integer >= 1; got {save_freq!r}.')
        self.backup_dir = str(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = bool(double_checkpoint)
        self.delete_checkpoint = bool(delete_checkpoint)
        self._given = [_resumable(obj) for obj in state]
        self._warnings = None
        self.initial_epoch = 0
        self.first_step = 0

    # ------------------------------------------------------------------ fit's hooks

    def on_train_begin(self, logs=None):
        model = self.model
        if not model.built:
            raise ValueError(
                "tftriplet.BackupAndRestore needs a built model before fit (call it on a batch "
                "or give it an Input) so that a backup can be loaded into it."
            )
        self._pieces = _collect(self._given, model)
        self._sampler = _the_sampler(self._pieces)
        self._steps = self._steps_per_epoch()
        self._writer = _is_writer(model)
        position = (0, 0)
        if backup.exists(self.backup_dir):
            meta, arrays = backup.restore(
                self.backup_dir, model, self._check_meta, self._check_iterations
            )
            for key, piece in self._pieces.items():
                if hasattr(piece, "resume_restore"):
                    piece.resume_restore(_piece_state(meta, arrays, key))
            position = (meta["position"]["epoch"], meta["position"]["step"])
            model._initial_epoch = position[0]
        self.initial_epoch, self._position = position[0], position
        self._restored = position != (0, 0)  # until fit's first epoch begins
        self._pending = None  # a backup due at the next epoch boundary
        self._global = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._pending is not None:
            self._save(*self._pending)
            self._pending = None
        if self._restored and epoch != self._position[0]:
            raise ValueError(
                f"fit starts at epoch {epoch} but the backup in {self.backup_dir!r} goes on "
                f"at epoch {self._position[0]}: give fit no initial_epoch."
            )
        self._restored = False
        first = self._position[1] if epoch == self._position[0] else 0
        self._epoch, self.first_step, self._done = epoch, first, 0
        self._global = epoch * self._steps + first
        self._stop_after = self._sampler.resume_start_epoch(epoch, first, self._steps)
        self._runs_out = bool(first) and self._stop_after is None
        if self._runs_out:
            # The sampler's batches run out after the resumed part of the epoch; that
            # is intended, not the "ran out of data" Keras warns about.
            self._warnings = warnings.catch_warnings()
            self._warnings.__enter__()
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            self._iterations = _iterations(self.model)

    def on_train_batch_end(self, batch, logs=None):
        if self._done == 0:
            self._sampler.resume_verify()
        self._done = batch + 1
        step = self.first_step + self._done
        previous, self._global = self._global, self._epoch * self._steps + step
        if self.save_freq != "epoch" and (
            self._global // self.save_freq > previous // self.save_freq
        ):
            if step < self._steps:
                self._save(self._epoch, step)
            else:  # the epoch's last step: back up after its on_epoch_end callbacks
                self._pending = (self._epoch + 1, 0)
        if self._stop_after is not None and self._done >= self._stop_after:
            self._model.stop_training = _STOP

    def on_epoch_end(self, epoch, logs=None):
        if getattr(self._model, "stop_training", None) is _STOP:
            self._model.stop_training = False
        self._end_warnings()
        if self._runs_out and _iterations(self.model) == self._iterations + self._done + 1:
            # Keras' TensorFlow trainer counts one more optimizer step when the data runs
            # out: the call that finds no batch still increments `iterations` (it does not
            # depend on the batch; no weight changes). Undo it, or Adam's bias correction
            # would differ from the uninterrupted run's.
            self.model.optimizer.iterations.assign(self._iterations + self._done)
        if self.save_freq == "epoch":
            self._pending = (epoch + 1, 0)

    def on_train_end(self, logs=None):
        self._end_warnings()
        if self.delete_checkpoint:
            if self._writer:
                backup.delete(self.backup_dir)
        elif self._pending is not None:
            self._save(*self._pending)
        self._pending = None
        self._sampler.resume_end()
        self.model._initial_epoch = None

    # ------------------------------------------------------------------ the work

    def _steps_per_epoch(self):
        steps = self._sampler.steps_per_epoch
        fit_steps = (self.params or {}).get("steps")
        if steps is None:  # an endless pk_dataset: fit's steps_per_epoch
            if not fit_steps:
                raise ValueError(
                    "an endless pk_dataset (batches_per_epoch=None) needs fit's steps_per_epoch."
                )
            return int(fit_steps)
        if fit_steps is not None and fit_steps != steps:
            raise ValueError(
                f"fit runs {fit_steps} steps per epoch but the sampler has batches_per_epoch="
                f"{steps}: give fit no steps_per_epoch (or the sampler's), so that a restored "
                "run knows where each epoch starts. (A PKBatches left in a resumed epoch by a "
                "fit that raised reports fewer batches: make a new one.)"
            )
        return steps

    def _save(self, epoch, step):
        if not self._writer:
            return
        meta = {
            "position": {"epoch": int(epoch), "step": int(step)},
            "steps_per_epoch": self._steps,
            "iterations": _iterations(self.model),
            "pieces": {},
        }
        arrays = {}
        for key, piece in self._pieces.items():
            state = {}
            values = piece.resume_state() if hasattr(piece, "resume_state") else {}
            for name, value in values.items():
                if isinstance(value, np.ndarray):
                    arrays[f"{key}/{name}"] = value
                else:
                    state[name] = value
            meta["pieces"][key] = {"config": piece.resume_config(), "state": state}
        backup.write(self.backup_dir, self.model, meta, arrays, self.double_checkpoint)

    def _check_meta(self, meta):
        """Refuse a backup of another configuration (raises BackupError)."""
        where = f"the backup in {self.backup_dir!r}"
        if meta.get("steps_per_epoch") != self._steps:
            raise backup.BackupError(
                f"{where} was written with {meta.get('steps_per_epoch')} steps per epoch; this "
                f"run has {self._steps}."
            )
        saved, current = meta.get("pieces", {}), self._pieces
        if set(saved) != set(current):
            raise backup.BackupError(
                f"{where} holds the state of {sorted(saved)}; this run has {sorted(current)}."
            )
        for key, piece in current.items():
            config = piece.resume_config()
            changed = [
                f"{name}={saved[key]['config'].get(name)!r} there, {value!r} here"
                for name, value in config.items()
                if saved[key]["config"].get(name) != value
            ]
            if changed:
                raise backup.BackupError(
                    f"{where} was written with another {key} ({'; '.join(changed)}); restart "
                    "with the same one, or delete the directory to train from the start."
                )
        position = meta["position"]
        if not (0 <= position["step"] < self._steps and position["epoch"] >= 0):
            raise backup.BackupError(f"{where} holds an impossible position {position}.")

    def _check_iterations(self, meta):
        if _iterations(self.model) != meta["iterations"]:
            raise backup.unreadable(
                f"its weights hold the optimizer at step {_iterations(self.model)}, its state "
                f"says {meta['iterations']}"
            )

    def _end_warnings(self):
        if self._warnings is not None:
            self._warnings.__exit__(None, None, None)
            self._warnings = None


def _iterations(model):
    """The optimizer's step count."""
    variable = model.optimizer.iterations
    try:
        return int(variable)
    except TypeError:  # a tf.distribute variable (MirroredVariable) has no int()
        return int(variable.value.numpy())


def _is_writer(model):
    """Whether this process writes the backup: all but MultiWorkerMirroredStrategy's
    non-chief workers (the chief writes; every worker restores)."""
    strategy = getattr(model, "distribute_strategy", None)
    extended = getattr(strategy, "extended", None)
    return bool(getattr(extended, "should_checkpoint", True))


def _resumable(obj):
    """`obj`, or the sampler of a dataset made by pk_dataset (through any transformation)."""
    if hasattr(obj, "resume_key"):
        return obj
    pending = [obj]
    while pending:
        dataset = pending.pop()
        sampler = getattr(dataset, "_tftriplet_sampler", None)
        if sampler is not None:
            return sampler
        inputs = getattr(dataset, "_inputs", None)
        pending.extend(inputs() if callable(inputs) else [])
    raise TypeError(
        "tftriplet.BackupAndRestore takes the sampler fit trains on (a PKBatches, or a dataset "
        "made by pk_dataset) and objects with the resume_* state methods; got "
        f"{type(obj).__name__}."
    )


def _collect(given, model):
    """The pieces of state by key: those given, and a loss (or losses) that has state or a
    cross-batch memory (`loss.memory`)."""
    candidates = [piece for loss in model_losses(model)
                  for piece in (loss, getattr(loss, "memory", None))]
    found = list(given) + [
        piece for piece in candidates if hasattr(piece, "resume_key") and piece not in given
    ]
    pieces = {}
    for piece in found:
        if piece.resume_key in pieces:
            raise ValueError(
                f"two pieces of state have the key {piece.resume_key!r} (those given to "
                "tftriplet.BackupAndRestore and the model's losses and their memories); each "
                "needs its own: a RetrievalEvaluation's prefix, a loss's name."
            )
        pieces[piece.resume_key] = piece
    return pieces


def _the_sampler(pieces):
    samplers = [p for p in pieces.values() if hasattr(p, "resume_start_epoch")]
    if len(samplers) != 1:
        raise ValueError(
            "tftriplet.BackupAndRestore needs the one sampler fit trains on (a PKBatches, or a "
            f"dataset made by pk_dataset); got {len(samplers)}."
        )
    return samplers[0]


def _piece_state(meta, arrays, key):
    state = dict(meta["pieces"][key]["state"])
    prefix = f"{key}/"
    state.update({k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)})
    return state
