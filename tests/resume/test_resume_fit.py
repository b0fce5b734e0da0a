"""tftriplet.BackupAndRestore inside one process (the current Keras backend): a fit stopped
by an exception and started again ends with the uninterrupted weights, whatever fit's
shuffle, for an endless pk_dataset too; RetrievalEvaluation's history comes back; the
early end of a resumed epoch does not end training, while another callback's stop still
does; and set-ups a restored run could not reproduce are refused before training. (The
SIGKILL tests, one process per run and backend, are test_resume_backends.py.)"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from test_resume_errors import Interrupt, batches, data, model_for

import tftriplet

EPOCHS = 3


def fit(sampler, directory, *state, epochs=EPOCHS, callbacks=(), **kwargs):
    model = model_for()
    backup = tftriplet.BackupAndRestore(directory, sampler, *state, save_freq=3)
    model.fit(sampler, epochs=epochs, verbose=0, callbacks=[backup, *callbacks], **kwargs)
    return model


def resumed(make_sampler, directory, stop_at, *state, also=(), **kwargs):
    """A fit interrupted after ``stop_at`` steps, then the same fit again to the end."""
    with pytest.raises(KeyboardInterrupt):
        fit(make_sampler(), directory, *state, callbacks=[Interrupt(stop_at)], **kwargs)
    return fit(make_sampler(), directory, *state, callbacks=also, **kwargs)


class Restored(keras.callbacks.Callback):
    """Records the optimizer step fit starts from (after BackupAndRestore restored)."""

    def on_train_begin(self, logs=None):
        self.step = int(self.model.optimizer.iterations)


def assert_same_weights(a, b):
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)


def test_the_batch_order_does_not_depend_on_fit_shuffle(tmp_path):
    """fit shuffles a PyDataset's indices by default; the sampler serves its batches in the
    order consumed, so the run is the same."""
    shuffled = fit(batches(), tmp_path / "a", shuffle=True)
    ordered = fit(batches(), tmp_path / "b", shuffle=False)
    assert_same_weights(shuffled, ordered)
    assert np.abs(shuffled.get_weights()[0] - model_for().get_weights()[0]).max() > 1e-2


@pytest.mark.parametrize(
    ("stop_at", "resumes_at"),
    [(7, 6), (9, 9), (10, 9), (15, 12)],
    ids=["mid-epoch", "after a backup", "an epoch's last step", "last step, backup due"],
)
def test_pkbatches_resumed_in_process_equals_uninterrupted(tmp_path, stop_at, resumes_at):
    """Backups every 3 steps, epochs of 5: the backup due at step 15, an epoch's last step,
    is written after that epoch's on_epoch_end callbacks, which the interruption skips."""
    uninterrupted = fit(batches(), tmp_path / "a")
    restored = Restored()
    model = resumed(batches, tmp_path / "b", stop_at, also=[restored])
    assert restored.step == resumes_at
    assert_same_weights(model, uninterrupted)


def test_an_endless_pk_dataset_resumes_mid_epoch(tmp_path):
    pytest.importorskip("tensorflow")
    x, y = data()

    def endless():
        return tftriplet.pk_dataset(x, y, classes_per_batch=3, samples_per_class=2, seed=5)

    uninterrupted = fit(endless(), tmp_path / "a", steps_per_epoch=5)
    restarted = resumed(endless, tmp_path / "b", 8, steps_per_epoch=5)
    assert_same_weights(restarted, uninterrupted)


def test_retrieval_history_comes_back(tmp_path):
    def evaluation():
        return tftriplet.RetrievalEvaluation(*data(seed=5), ks=(1, 2))

    reference = evaluation()
    fit(batches(), tmp_path / "a", reference, callbacks=[reference])
    first = evaluation()
    with pytest.raises(KeyboardInterrupt):
        fit(batches(), tmp_path / "b", first, callbacks=[first, Interrupt(12)])
    assert sorted(first.history) == [0, 1]
    second = evaluation()
    fit(batches(), tmp_path / "b", second, callbacks=[second])
    assert sorted(second.history) == [0, 1, 2]
    for epoch, results in reference.history.items():
        assert second.history[epoch] == pytest.approx(results, abs=1e-12)
    assert second.last_results == pytest.approx(reference.last_results, abs=1e-12)


class StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


@pytest.mark.parametrize("first", [True, False], ids=["stopper first", "stopper last"])
def test_a_resumed_epoch_that_ends_early_still_lets_another_callback_stop(tmp_path, first):
    pytest.importorskip("tensorflow")
    x, y = data()

    def dataset():
        return tftriplet.pk_dataset(
            x, y, classes_per_batch=3, samples_per_class=2, batches_per_epoch=5, seed=5
        )

    # Without a stopper, the resumed epoch's early end (after 3 of 5 steps) is not a stop.
    model = resumed(dataset, tmp_path / "a", 7)
    assert int(model.optimizer.iterations) == EPOCHS * 5
    with pytest.raises(KeyboardInterrupt):
        fit(dataset(), tmp_path / "b", callbacks=[Interrupt(7)])
    model, ds = model_for(), dataset()
    backup = tftriplet.BackupAndRestore(tmp_path / "b", ds, save_freq=3)
    callbacks = [StopAfterFirstEpoch(), backup] if first else [backup, StopAfterFirstEpoch()]
    model.fit(ds, epochs=EPOCHS, verbose=0, callbacks=callbacks)
    assert int(model.optimizer.iterations) == 10, "stopped at the end of the resumed epoch"


def test_setups_a_restored_run_could_not_reproduce_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"fit runs 4 steps per epoch but .*batches_per_epoch=5"):
        fit(batches(), tmp_path / "a", steps_per_epoch=4)
    x, y = data()
    parallel = tftriplet.PKBatches(x, y, 3, 2, batches_per_epoch=5, workers=2)
    with pytest.raises(ValueError, match="workers=1, use_multiprocessing=False; got workers=2"):
        fit(parallel, tmp_path / "b")
    model = model_for()
    backup = tftriplet.BackupAndRestore(tmp_path / "c", batches(), save_freq=3)
    with pytest.raises(ValueError, match="did not come from the sampler given"):
        model.fit(batches(), epochs=1, verbose=0, callbacks=[backup])
    with pytest.raises(ValueError, match="needs the one sampler fit trains on"):
        model.fit(batches(), epochs=1, verbose=0,
                  callbacks=[tftriplet.BackupAndRestore(tmp_path / "d")])
    with pytest.raises(TypeError, match="takes the sampler fit trains on"):
        tftriplet.BackupAndRestore(tmp_path / "e", x)
    with pytest.raises(ValueError, match="save_freq must be"):
        tftriplet.BackupAndRestore(tmp_path / "e", batches(), save_freq=0)


def test_a_finite_pk_dataset_with_fit_steps_per_epoch_is_refused_after_a_resume(tmp_path):
    """With steps_per_epoch, fit keeps a finite dataset's pass across epochs: after a
    resumed epoch its next batches would be stale; the epoch's first step is refused."""
    pytest.importorskip("tensorflow")
    x, y = data()

    def dataset():
        return tftriplet.pk_dataset(
            x, y, classes_per_batch=3, samples_per_class=2, batches_per_epoch=5, seed=5
        )

    with pytest.raises(ValueError, match="give fit no steps_per_epoch"):
        resumed(dataset, tmp_path / "a", 7, steps_per_epoch=5)


def test_a_restored_run_that_fit_starts_at_another_epoch_is_refused(tmp_path):
    """fit(initial_epoch=...) overrides the epoch a backup goes on at (Keras only uses the
    restored epoch when it is not 0)."""
    with pytest.raises(KeyboardInterrupt):
        fit(batches(), tmp_path / "a", callbacks=[Interrupt(4)])  # backup at epoch 0, step 3
    with pytest.raises(ValueError, match="fit starts at epoch 2 but the backup .* at epoch 0"):
        fit(batches(), tmp_path / "a", initial_epoch=2)
