"""P classes x K samples batches."""

import keras
import numpy as np
import pytest

from tftriplet.samplers import PKBatches


def make_data(counts, features=3):
    y = np.concatenate([np.full(n, c, dtype=np.int64) for c, n in enumerate(counts)])
    # Row i holds i in every column, so a batch's rows can be traced back to their indices.
    x = np.repeat(np.arange(len(y), dtype=np.float32)[:, None], features, axis=1)
    return x, y


def test_every_batch_has_p_distinct_classes_with_k_distinct_samples_each():
    x, y = make_data([20, 15, 30, 12, 25, 18])
    batches = PKBatches(x, y, classes_per_batch=4, samples_per_class=5, batches_per_epoch=30)
    assert len(batches) == 30
    for index in range(len(batches)):
        xb, yb = batches[index]
        assert xb.shape == (20, 3) and yb.shape == (20,)
        assert yb.dtype == np.int32
        rows = xb[:, 0].astype(int)
        assert np.array_equal(y[rows], yb)  # each label belongs to its row
        classes, counts = np.unique(yb, return_counts=True)
        assert len(classes) == 4 and np.all(counts == 5)
        assert len(np.unique(rows)) == 20  # no repeats when every class has >= K samples
        # Classes come in consecutive runs of K.
        assert all(len(set(yb[i : i + 5])) == 1 for i in range(0, 20, 5))


def test_deterministic_by_seed_epoch_and_index():
    x, y = make_data([10] * 8)

    def epoch_rows(seed, epoch):
        batches = PKBatches(x, y, 4, 3, 6, seed=seed)
        return [batches.batch_indices(i, epoch=epoch) for i in range(6)]

    same = epoch_rows(1, 0)
    assert all(np.array_equal(a, b) for a, b in zip(same, epoch_rows(1, 0), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(same, epoch_rows(2, 0), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(same, epoch_rows(1, 1), strict=True))
    # Asking in another order gives the same batch; on_epoch_end moves to the next epoch.
    batches = PKBatches(x, y, 4, 3, 6, seed=1)
    assert np.array_equal(batches[5][1], y[same[5]])
    batches.on_epoch_end()
    assert batches.epoch == 1
    assert np.array_equal(batches.batch_indices(0), epoch_rows(1, 1)[0])


def test_class_with_fewer_than_k_samples_gives_all_of_them_padded_with_replacement():
    x, y = make_data([3, 10])  # class 0 has 3 samples, K = 5
    batches = PKBatches(x, y, 2, 5, 10, seed=0)
    assert batches.undersized_classes == [0]
    for index in range(10):
        rows = batches.batch_indices(index)
        small = rows[y[rows] == 0]
        assert len(small) == 5
        assert set(small.tolist()) == {0, 1, 2}  # all three, two drawn again


def test_every_class_is_drawn_over_an_epoch():
    x, y = make_data([6] * 10)
    batches = PKBatches(x, y, 3, 2, 20, seed=3)
    seen = np.concatenate([batches[i][1] for i in range(20)])
    assert set(seen.tolist()) == set(range(10))


def test_trains_a_keras_model_with_a_triplet_loss():
    import tftriplet

    x, y = make_data([8] * 4, features=4)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", loss=tftriplet.BatchAllTripletLoss(margin=0.2))
    history = model.fit(PKBatches(x / len(y), y, 2, 4, 3, seed=0), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"classes_per_batch": 5}, ValueError, r"P\) must be in 2\.\.4"),
        ({"classes_per_batch": 1}, ValueError, r"P\) must be in 2\.\.4"),
        ({"samples_per_class": 1}, ValueError, r"K\) must be >= 2"),
        ({"batches_per_epoch": 0}, ValueError, "batches_per_epoch"),
        ({"y": np.zeros(32)}, TypeError, "integer class ids"),
        ({"y": np.zeros((32, 2), dtype=int)}, ValueError, "1-D"),
        ({"x": np.zeros((31, 4))}, ValueError, "one row per label"),
        # int32 batches would wrap 2**32 to 0 and merge the two classes
        ({"y": np.repeat([0, 2**32, 1, 2], 8)}, ValueError, r"fit in int32.*\[0, 4294967296\]"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    x, y = make_data([8] * 4, features=4)
    args = {"x": x, "y": y, "classes_per_batch": 2, "samples_per_class": 2, "batches_per_epoch": 1}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        PKBatches(**args)


def test_pinned_to_a_position_it_serves_batches_in_the_order_consumed():
    """Under tftriplet.BackupAndRestore: epoch 2 from step 1, whatever index fit asks for
    (fit shuffles a PyDataset's indices), and the epoch holds the batches left."""
    x, y = make_data([10] * 8)
    batches = PKBatches(x, y, 4, 3, 6, seed=1)
    with pytest.raises(ValueError, match="did not come from the sampler"):
        batches.resume_verify()  # not pinned: fit did not take its batches from it
    assert batches.resume_start_epoch(2, 1, 6) is None  # the batches run out by themselves
    assert len(batches) == 5 and batches.epoch == 2
    for step, asked in zip(range(1, 6), [4, 0, 3, 1, 2], strict=True):
        xb, yb = batches[asked]
        assert np.array_equal(xb[:, 0].astype(int), batches.batch_indices(step, epoch=2))
    batches.resume_verify()
    batches.resume_end()
    assert len(batches) == 6
    assert np.array_equal(batches[4][0][:, 0].astype(int), batches.batch_indices(4, epoch=2))


def test_its_record_names_the_sampler_and_its_data():
    x, y = make_data([10] * 8)
    config = PKBatches(x, y, 4, 3, 6, seed=1).resume_config()
    assert {k: config[k] for k in ("classes_per_batch", "samples_per_class", "seed")} == {
        "classes_per_batch": 4,
        "samples_per_class": 3,
        "seed": 1,
    }
    assert config["batches_per_epoch"] == 6 and config["num_samples"] == 80
    assert config == PKBatches(x.copy(), y.copy(), 4, 3, 6, seed=1).resume_config()
    x[5, 0] += 1  # one changed value changes the digest
    assert PKBatches(x, y, 4, 3, 6, seed=1).resume_config()["data_digest"] != config["data_digest"]
