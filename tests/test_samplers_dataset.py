"""pk_dataset (tf.data) and PKBatches (PyDataset): the P x K batch layout, determinism for a
seed, classes smaller than K, and training through model.fit."""

import warnings

import keras
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import tftriplet  # noqa: E402

P, K = 3, 4


def labelled_rows(sizes=(9, 7, 12, 5, 8), seed=0):
    """Shuffled labels with the given class sizes; x[i] = [i, y[i]] names its own row."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(len(sizes)), sizes)).astype(np.int64)
    x = np.stack([np.arange(len(y)), y], axis=1).astype(np.float32)
    return x, y


def batches_of(dataset, passes=1):
    """Every batch of ``passes`` passes over the dataset, as NumPy (x, y) pairs."""
    return [[(xb, yb) for xb, yb in dataset.as_numpy_iterator()] for _ in range(passes)]


def check_layout(batches, x, y, p=P, k=K, small=()):
    for xb, yb in batches:
        assert xb.shape == (p * k, x.shape[1]) and yb.shape == (p * k,)
        assert yb.dtype == np.int32
        rows = xb[:, 0].astype(int)
        # each row is a real sample with its own label
        np.testing.assert_array_equal(yb, y[rows])
        np.testing.assert_array_equal(xb, x[rows])
        runs = yb.reshape(p, k)
        assert np.all(runs == runs[:, :1]), "classes come in consecutive runs of K"
        assert len(set(runs[:, 0].tolist())) == p, "P distinct classes"
        for run_rows, c in zip(rows.reshape(p, k), runs[:, 0], strict=True):
            members = np.flatnonzero(y == c)
            if len(members) >= k:
                assert len(set(run_rows.tolist())) == k, "K distinct samples"
            else:  # all of a small class, then repeats
                assert set(run_rows.tolist()) == set(members.tolist())
                assert c in small


def test_array_form_layout_and_every_class_appears():
    x, y = labelled_rows()
    ds = tftriplet.pk_dataset(
        x, y, classes_per_batch=P, samples_per_class=K, batches_per_epoch=40, seed=0
    )
    (batches,) = batches_of(ds)
    assert len(batches) == 40
    check_layout(batches, x, y)
    seen = np.concatenate([yb for _, yb in batches])
    assert set(seen.tolist()) == set(range(5))


def test_dataset_form_reads_x_y_elements_and_gives_the_same_batches_as_arrays():
    x, y = labelled_rows()
    from_arrays = tftriplet.pk_dataset(
        x, y, classes_per_batch=P, samples_per_class=K, batches_per_epoch=6, seed=4
    )
    elements = tf.data.Dataset.from_tensor_slices((x, y))
    from_elements = tftriplet.pk_dataset(
        elements, classes_per_batch=P, samples_per_class=K, batches_per_epoch=6, seed=4
    )
    (a,) = batches_of(from_arrays)
    (b,) = batches_of(from_elements)
    check_layout(b, x, y)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_deterministic_for_a_seed_new_batches_each_pass_and_other_seeds_differ():
    x, y = labelled_rows()

    def make(seed):
        return tftriplet.pk_dataset(
            x, y, classes_per_batch=P, samples_per_class=K, batches_per_epoch=5, seed=seed
        )

    first = batches_of(make(7), passes=2)
    again = batches_of(make(7), passes=2)
    other = batches_of(make(8), passes=1)
    rows = [[xb[:, 0].tolist() for xb, _ in one_pass] for one_pass in first]
    assert rows == [[xb[:, 0].tolist() for xb, _ in one_pass] for one_pass in again]
    assert rows[0] != rows[1], "each pass (epoch) draws new batches"
    assert rows[0] != [xb[:, 0].tolist() for xb, _ in other[0]]


def test_small_classes_are_padded_and_named_in_a_warning():
    x, y = labelled_rows(sizes=(9, 2, 12, 3, 8))
    with pytest.warns(UserWarning, match=r"fewer than K=4 .*\[1, 3\]"):
        ds = tftriplet.pk_dataset(
            x, y, classes_per_batch=P, samples_per_class=K, batches_per_epoch=30, seed=1
        )
    (batches,) = batches_of(ds)
    check_layout(batches, x, y, small=(1, 3))
    assert any(1 in yb or 3 in yb for _, yb in batches)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when every class has K samples
        tftriplet.pk_dataset(x, y, classes_per_batch=P, samples_per_class=2, seed=1)


def test_endless_without_batches_per_epoch():
    x, y = labelled_rows()
    ds = tftriplet.pk_dataset(x, y, classes_per_batch=2, samples_per_class=2, seed=0)
    assert ds.cardinality() == tf.data.INFINITE_CARDINALITY
    check_layout(list(ds.take(3).as_numpy_iterator()), x, y, p=2, k=2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"classes_per_batch": 6}, r"classes_per_batch \(P\) must be in 2..5"),
        ({"samples_per_class": 1}, r"samples_per_class \(K\) must be >= 2"),
        ({"batches_per_epoch": 0}, "batches_per_epoch must be >= 1"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    x, y = labelled_rows()
    args = {"classes_per_batch": P, "samples_per_class": K, **kwargs}
    with pytest.raises(ValueError, match=match):
        tftriplet.pk_dataset(x, y, **args)


def test_class_ids_beyond_int32_are_refused_not_wrapped():
    x, y = labelled_rows()
    wide = np.where(y == 0, 2**32 + 1, y)  # as int32, 2**32 + 1 wraps to 1: classes merge
    with pytest.raises(ValueError, match=r"y must be class ids that fit in int32"):
        tftriplet.pk_dataset(x, wide, classes_per_batch=P, samples_per_class=K)


def test_bad_datasets_are_refused():
    x, y = labelled_rows()
    elements = tf.data.Dataset.from_tensor_slices((x, y))
    with pytest.raises(ValueError, match="either arrays x and y, or a dataset"):
        tftriplet.pk_dataset(elements, y, classes_per_batch=P, samples_per_class=K)
    with pytest.raises(ValueError, match=r"call \.unbatch\(\)"):
        tftriplet.pk_dataset(elements.batch(4), classes_per_batch=P, samples_per_class=K)
    with pytest.raises(ValueError, match="infinite"):
        tftriplet.pk_dataset(elements.repeat(), classes_per_batch=P, samples_per_class=K)
    with pytest.raises(ValueError, match="y .class ids. is required"):
        tftriplet.pk_dataset(x, classes_per_batch=P, samples_per_class=K)


def test_pkbatches_layout_and_determinism():
    x, y = labelled_rows(sizes=(9, 2, 12, 5, 8))
    a = tftriplet.PKBatches(x, y, P, K, batches_per_epoch=20, seed=3)
    b = tftriplet.PKBatches(x, y, P, K, batches_per_epoch=20, seed=3)
    check_layout([a[i] for i in range(len(a))], x, y, small=(1,))
    assert a.undersized_classes == [1]
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i][0], b[i][0])
    a.on_epoch_end()
    assert any(not np.array_equal(a[i][0], b[i][0]) for i in range(len(a)))


def test_pk_dataset_trains_with_model_fit():
    x, y = labelled_rows()
    ds = tftriplet.pk_dataset(
        x, y, classes_per_batch=P, samples_per_class=K, batches_per_epoch=4, seed=0
    )
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4)])
    model.compile(optimizer="sgd", loss=tftriplet.BatchAllTripletLoss(margin=0.5))
    history = model.fit(ds, epochs=2, verbose=0).history
    assert len(history["loss"]) == 2 and all(np.isfinite(history["loss"]))


def rows_of(batches):
    return [xb[:, 0].astype(int).tolist() for xb, _ in batches]


def test_a_batch_is_a_pure_function_of_seed_epoch_and_step():
    """A pass pinned to (epoch 2, step 3), on a fresh dataset, serves steps 3, 4, ... of
    epoch 2: the batches the third unpinned pass serves there. The TensorFlow global seed
    plays no part."""
    x, y = labelled_rows()

    def make():
        return tftriplet.pk_dataset(
            x, y, classes_per_batch=P, samples_per_class=K, batches_per_epoch=6, seed=2
        )

    tf.random.set_seed(1)
    passes = [rows_of(one) for one in batches_of(make(), passes=3)]
    tf.random.set_seed(2)
    pinned = make()
    sampler = pinned._tftriplet_sampler
    assert sampler.resume_start_epoch(2, 3, 6) == 3  # fit must end the epoch after 3 steps
    (served,) = batches_of(pinned)
    assert len(served) == 6, "a pass keeps its length (the last 3 are never trained on)"
    assert rows_of(served)[:3] == passes[2][3:]
    sampler.resume_verify()
    assert sampler.resume_start_epoch(1, 0, 6) is None
    assert [rows_of(one) for one in batches_of(pinned, passes=2)] == [passes[1]] * 2
    sampler.resume_end()
    assert rows_of(batches_of(pinned)[0]) == passes[2], "on its own it goes on with epoch 2"


def test_an_endless_pass_pinned_at_a_global_step():
    x, y = labelled_rows()

    def make():
        return tftriplet.pk_dataset(x, y, classes_per_batch=P, samples_per_class=K, seed=2)

    stream = rows_of(make().take(12).as_numpy_iterator())
    pinned = make()
    # epoch 1, step 2 of 5-step epochs: global step 7 of the one endless pass
    assert pinned._tftriplet_sampler.resume_start_epoch(1, 2, 5) == 3
    assert rows_of(pinned.take(5).as_numpy_iterator()) == stream[7:12]
