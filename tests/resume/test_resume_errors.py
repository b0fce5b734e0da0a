"""Bad restarts get a clear error and never train on: a backup of another sampler (P, K,
seed, batches per epoch, data), of other state, of Keras' own callback, or a corrupt or
partial backup directory; and set-ups a restored run could not reproduce. In-process runs
(an exception stops the first fit, leaving its backup, as a kill would)."""

from __future__ import annotations

import json
import os
import shutil

import keras
import numpy as np
import pytest

import tftriplet
from tftriplet.backup import BackupError

N = 5  # batches per epoch


def data(size=30, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(6), size // 6).astype(np.int64)
    return rng.normal(size=(len(y), 4)).astype(np.float32), y


def model_for(units=3):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units)])
    model.compile(keras.optimizers.Adam(0.01), tftriplet.BatchAllTripletLoss(margin=0.5))
    return model


def batches(p=3, k=2, seed=3, n=N, x_and_y=None):
    x, y = data() if x_and_y is None else x_and_y
    return tftriplet.PKBatches(x, y, p, k, batches_per_epoch=n, seed=seed)


class Interrupt(keras.callbacks.Callback):
    """Stops fit with an exception after ``step`` optimizer steps (the backup stays)."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) == self.step:
            raise KeyboardInterrupt


def interrupted_fit(directory, sampler, *state, step=7, model=None, **kwargs):
    """A fit stopped after ``step`` steps with a backup every 3; returns the model."""
    model = model_for() if model is None else model
    backup = tftriplet.BackupAndRestore(directory, sampler, *state, save_freq=3, **kwargs)
    with pytest.raises(KeyboardInterrupt):
        model.fit(sampler, epochs=3, verbose=0, callbacks=[backup, Interrupt(step)])
    return model


def restart(directory, sampler, *state, model=None, epochs=3, **kwargs):
    model = model_for() if model is None else model
    backup = tftriplet.BackupAndRestore(directory, sampler, *state, save_freq=3, **kwargs)
    model.fit(sampler, epochs=epochs, verbose=0, callbacks=[backup])
    return model


@pytest.fixture
def backed_up(tmp_path):
    """A backup of step 6 (epoch 1, step 1) of PKBatches(P=3, K=2, seed=3, 5 per epoch)."""
    directory = tmp_path / "backup"
    interrupted_fit(directory, batches())
    assert json.loads((directory / "latest.json").read_text())["generation"] == 2
    return directory


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        ({"p": 2}, "classes_per_batch=3 there, 2 here"),
        ({"k": 3}, "samples_per_class=2 there, 3 here"),
        ({"seed": 4}, "seed=3 there, 4 here"),
        ({"x_and_y": data(size=36)}, "num_samples=30 there, 36 here"),
        ({"x_and_y": data(seed=1)}, "data_digest="),
        ({"n": 6}, "written with 5 steps per epoch; this run has 6"),
    ],
    ids=["P", "K", "seed", "data size", "same size, other data", "batches per epoch"],
)
def test_a_backup_of_another_sampler_is_refused_before_loading(backed_up, changed, named):
    model = model_for()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(BackupError, match=named):
        restart(backed_up, batches(**changed), model=model)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_a_backup_of_other_state_is_refused(backed_up):
    evaluation = tftriplet.RetrievalEvaluation(*data(seed=5))
    with pytest.raises(BackupError, match=r"holds the state of \['sampler'\]; this run has"):
        restart(backed_up, batches(), evaluation)


def test_a_backup_of_keras_backupandrestore_is_refused(tmp_path):
    directory = tmp_path / "keras"
    sampler, model = batches(), model_for()
    keras_backup = keras.callbacks.BackupAndRestore(str(directory), delete_checkpoint=False)
    model.fit(sampler, epochs=1, verbose=0, callbacks=[keras_backup])
    with pytest.raises(BackupError, match="keras.callbacks.BackupAndRestore"):
        restart(directory, batches())


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "latest.json garbage": (lambda d: (d / "latest.json").write_text("{not json"), "latest.json"),
    "latest.json of another format": (
        lambda d: (d / "latest.json").write_text('{"generation": 2}'),
        "latest.json is unreadable",
    ),
    "generation folder missing": (
        lambda d: shutil.rmtree(d / "generation-2"),
        "folder generation-2 is missing",
    ),
    "weights missing": (
        lambda d: os.remove(d / "generation-2" / "model.weights.h5"),
        "model.weights.h5 is missing",
    ),
    "weights truncated": (
        lambda d: _truncate(d / "generation-2" / "model.weights.h5"),
        "model.weights.h5 cannot be loaded",
    ),
    "state truncated": (lambda d: _truncate(d / "generation-2" / "state.npz"), "state.npz"),
    "state missing": (
        lambda d: os.remove(d / "generation-2" / "state.npz"),
        "state.npz is missing",
    ),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_corrupt_or_partial_backup_is_refused(backed_up, damage):
    spoil, named = DAMAGE[damage]
    spoil(backed_up)
    with pytest.raises(BackupError, match=named) as raised:
        restart(backed_up, batches())
    assert "delete the directory to train from the start" in str(raised.value)


def test_weights_from_another_step_than_the_state_are_refused(tmp_path):
    """A generation holding another generation's weights (a hand-made mix)."""
    directory = tmp_path / "backup"
    interrupted_fit(directory, batches(), double_checkpoint=True)  # keeps generations 1, 2
    shutil.copy(directory / "generation-1" / "model.weights.h5", directory / "generation-2")
    shutil.rmtree(directory / "generation-1")
    with pytest.raises(BackupError, match="optimizer at step 3, its state says 6"):
        restart(directory, batches())


def test_a_model_that_does_not_fit_the_weights_is_refused(backed_up):
    with pytest.raises(BackupError, match="cannot be loaded into this model"):
        restart(backed_up, batches(), model=model_for(units=5))


def test_double_checkpoint_restores_the_previous_backup_when_the_latest_is_damaged(tmp_path):
    directory = tmp_path / "backup"
    interrupted_fit(directory, batches(), double_checkpoint=True)
    assert sorted(p.name for p in directory.glob("generation-*")) == [
        "generation-1",
        "generation-2",
    ]
    _truncate(directory / "generation-2" / "model.weights.h5")
    model = model_for()
    with pytest.warns(UserWarning, match="restored the previous one, generation 1"):
        restart(directory, batches(), model=model, epochs=1, double_checkpoint=True)
    # generation 1 is step 3 (epoch 0, step 3): the restored run ends epoch 0 at step 5
    assert int(model.optimizer.iterations) == N


def memory_model(size, units=3, warmup=1):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units)])
    loss = tftriplet.BatchAllTripletLoss(margin=0.5, memory_size=size, memory_warmup=warmup)
    model.compile(keras.optimizers.Adam(0.01), loss)
    tftriplet.attach_memory(model)
    return model


def test_a_memory_of_another_size_or_dimension_is_refused(tmp_path):
    interrupted_fit(tmp_path, batches(), model=memory_model(8))
    with pytest.raises(BackupError, match=r"memory:batch_all_triplet_loss_memory.*size=8 "
                                          r"there, 9 here"):
        restart(tmp_path, batches(), model=memory_model(9))
    with pytest.raises(BackupError, match=r"holds the state of \['memory:batch_all_triplet_"
                                          r"loss_memory', 'sampler'\]; this run has \['sampler'\]"):
        restart(tmp_path, batches())
    state = memory_model(8).loss.memory.resume_state()  # not built: an empty state
    assert state == {"built": False}
    held = interrupted_fit(tmp_path / "2", batches(), model=memory_model(8)).loss.memory
    state = held.resume_state()
    for built in (True, False):  # restored into built variables, or kept for the first batch
        memory = tftriplet.CrossBatchMemory(8, warmup=1)
        if built:
            memory.build(5, "float32")
        match = "holds embeddings of dimension 3 in float32; this run gives .* dimension 5"
        with pytest.raises(ValueError, match=match):
            memory.resume_restore(state)
            memory.check_batch(np.ones((2, 5), "float32"))


def test_a_restored_memory_holds_what_it_held_at_the_backup(tmp_path):
    model = interrupted_fit(tmp_path, batches(), model=memory_model(8, warmup=0), step=6)
    held = model.loss.memory.contents()  # the backup of step 6 is the state after step 6
    fresh = memory_model(8, warmup=0)
    backup = tftriplet.BackupAndRestore(tmp_path, batches(), save_freq=3)
    backup.set_model(fresh)
    backup.on_train_begin()
    assert fresh.loss.memory.steps == 6
    for a, b in zip(held, fresh.loss.memory.contents(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_two_pieces_of_state_with_one_key_are_refused(tmp_path):
    x, y = data()
    evaluations = [tftriplet.RetrievalEvaluation(x, y) for _ in range(2)]  # one prefix
    backup = tftriplet.BackupAndRestore(tmp_path / "backup", batches(), *evaluations)
    with pytest.raises(ValueError, match="RetrievalEvaluation:val_.*each needs its own"):
        model_for().fit(batches(), epochs=1, verbose=0, callbacks=[backup])


def test_two_memories_of_one_name_in_the_model_s_losses_are_refused(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, {"a": keras.layers.Dense(3)(inputs),
                                 "b": keras.layers.Dense(3)(inputs)})
    model.compile("sgd", {"a": tftriplet.BatchHardTripletLoss(memory_size=8),
                          "b": tftriplet.BatchHardTripletLoss(memory_size=8)})
    backup = tftriplet.BackupAndRestore(tmp_path / "backup", batches())
    x, y = data()
    with pytest.raises(ValueError, match="memory:batch_hard_triplet_loss_memory.*losses"):
        model.fit(x, {"a": y, "b": y}, batch_size=6, verbose=0, callbacks=[backup])
