"""RetrievalEvaluation through a real model.fit: log keys, values equal to retrieval_metrics
on model.predict, EarlyStopping / ModelCheckpoint on its keys, and pytorch-metric-learning's
AccuracyCalculator on the same embeddings."""

import keras
import numpy as np
import pytest

import tftriplet
from tftriplet.retrieval import retrieval_metrics


def clusters(classes=5, per_class=8, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(classes, dim))
    y = np.repeat(np.arange(classes), per_class).astype(np.int32)
    x = (centres[y] + rng.normal(size=(len(y), dim))).astype(np.float32)
    return x, y


def small_model(dim=6, seed=0, learning_rate=0.05):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((dim,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4)]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss=tftriplet.BatchAllTripletLoss(margin=0.3),
    )
    return model


def embed(model, x):
    return np.asarray(model.predict(x, verbose=0))


def test_fit_logs_recall_and_map_at_r_equal_to_retrieval_metrics_on_predict():
    x, y = clusters()
    x_val, y_val = clusters(seed=1)
    evaluation = tftriplet.RetrievalEvaluation(x_val, y_val, ks=(1, 3), chunk_size=7)
    model = small_model()
    history = model.fit(
        x, y, batch_size=20, epochs=3, shuffle=False, verbose=0, callbacks=[evaluation]
    ).history
    keys = ["val_recall@1", "val_recall@3", "val_map@r"]
    assert evaluation.log_keys() == keys
    for key in keys:
        assert len(history[key]) == 3 and all(0.0 <= v <= 1.0 for v in history[key])
    # The last epoch's values are those of the trained model.
    expected = retrieval_metrics(embed(model, x_val), y_val, ks=(1, 3))
    for key in keys:
        assert history[key][-1] == pytest.approx(expected[key[4:]], abs=1e-12)
    assert evaluation.last_results["num_queries"] == len(y_val)


def test_query_against_gallery_through_fit():
    x, y = clusters()
    queries, query_labels = clusters(classes=4, per_class=3, seed=2)
    gallery, gallery_labels = clusters(classes=5, per_class=6, seed=3)
    evaluation = tftriplet.RetrievalEvaluation(
        queries, query_labels, gallery=(gallery, gallery_labels), ks=(1, 5), prefix="gal_"
    )
    model = small_model()
    history = model.fit(x, y, batch_size=40, epochs=2, verbose=0, callbacks=[evaluation]).history
    expected = retrieval_metrics(
        embed(model, queries),
        query_labels,
        ks=(1, 5),
        gallery_embeddings=embed(model, gallery),
        gallery_labels=gallery_labels,
    )
    for key in ("recall@1", "recall@5", "map@r"):
        assert history[f"gal_{key}"][-1] == pytest.approx(expected[key], abs=1e-12)
    assert expected["num_queries"] == 12


def test_early_stopping_and_checkpoint_monitor_val_recall_at_1(tmp_path):
    x, y = clusters()
    x_val, y_val = clusters(seed=1)
    model = small_model(learning_rate=0.0)  # the weights never change: no improvement
    stop = keras.callbacks.EarlyStopping(monitor="val_recall@1", mode="max", patience=2)
    best = tmp_path / "best.weights.h5"
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(best), monitor="val_map@r", mode="max", save_best_only=True, save_weights_only=True
    )
    evaluation = tftriplet.RetrievalEvaluation(x_val, y_val)
    history = model.fit(
        x, y, batch_size=40, epochs=20, verbose=0, callbacks=[evaluation, stop, checkpoint]
    ).history
    # Epoch 1 sets the best value; two epochs without improvement stop the run.
    assert len(history["val_recall@1"]) == 3
    assert stop.stopped_epoch == 2
    assert checkpoint.best == pytest.approx(history["val_map@r"][0])
    assert best.is_file()


def test_bad_arguments_are_refused():
    x, y = clusters()
    # A wrong dtype is a TypeError, as in retrieval_metrics, the samplers and the losses.
    with pytest.raises(TypeError, match="integer class ids"):
        tftriplet.RetrievalEvaluation(x, y.astype(float))
    # One label per row of x, checked before training rather than after the first epoch.
    with pytest.raises(ValueError, match=r"x and y must have one row per label: x has N=39"):
        tftriplet.RetrievalEvaluation(x[:-1], y)
    with pytest.raises(ValueError, match=r"gallery inputs and gallery labels .*N=40.*\(39,\)"):
        tftriplet.RetrievalEvaluation(x, y, gallery=(x, y[:-1]))
    with pytest.raises(ValueError, match="gallery must be a pair"):
        tftriplet.RetrievalEvaluation(x, y, gallery=x)
    with pytest.raises(ValueError, match="ks must be"):
        tftriplet.RetrievalEvaluation(x, y, ks=(0,))


def pml_accuracy(query, query_labels, reference=None, reference_labels=None):
    """pytorch-metric-learning's precision@1 and MAP@R, Euclidean distance."""
    pml = pytest.importorskip(
        "pytorch_metric_learning.utils.accuracy_calculator",
        reason="pytorch-metric-learning is not installed (pip install pytorch-metric-learning)",
    )
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.inference import CustomKNN

    calc = pml.AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"),
        knn_func=CustomKNN(LpDistance(normalize_embeddings=False)),
    )
    if reference is None:
        return calc.get_accuracy(query, query_labels)
    return calc.get_accuracy(query, query_labels, reference, reference_labels, False)


def test_callback_matches_pytorch_metric_learning_leave_one_out_and_gallery():
    x, y = clusters()
    x_val, y_val = clusters(seed=1)
    gallery, gallery_labels = clusters(seed=5)
    loo = tftriplet.RetrievalEvaluation(x_val, y_val, ks=(1,))
    gal = tftriplet.RetrievalEvaluation(
        x_val, y_val, gallery=(gallery, gallery_labels), ks=(1,), prefix="gal_"
    )
    model = small_model()
    model.fit(x, y, batch_size=40, epochs=2, verbose=0, callbacks=[loo, gal])
    q = embed(model, x_val)
    theirs = pml_accuracy(q, y_val)
    assert loo.last_results["recall@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert loo.last_results["map@r"] == pytest.approx(
        theirs["mean_average_precision_at_r"], abs=1e-6
    )
    theirs = pml_accuracy(q, y_val, embed(model, gallery), gallery_labels)
    assert gal.last_results["recall@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-6)
    assert gal.last_results["map@r"] == pytest.approx(
        theirs["mean_average_precision_at_r"], abs=1e-6
    )


def test_history_keeps_every_epoch_and_its_state_round_trips_through_json():
    """history[epoch] holds what the epoch logged; resume_state / resume_restore (the state
    tftriplet.BackupAndRestore backs up) bring back history and last_results."""
    import json

    x, y = clusters()
    x_val, y_val = clusters(seed=1)
    evaluation = tftriplet.RetrievalEvaluation(x_val, y_val, ks=(1, 3))
    logged = small_model().fit(
        x, y, batch_size=20, epochs=3, shuffle=False, verbose=0, callbacks=[evaluation]
    ).history
    assert sorted(evaluation.history) == [0, 1, 2]
    for epoch in range(3):
        for key in evaluation.log_keys():
            assert evaluation.history[epoch][key[4:]] == logged[key][epoch]
    state = json.loads(json.dumps(evaluation.resume_state()))
    restored = tftriplet.RetrievalEvaluation(x_val, y_val, ks=(1, 3))
    assert restored.resume_key == evaluation.resume_key == "RetrievalEvaluation:val_"
    assert restored.resume_config() == {"ks": [1, 3], "num_queries": 40, "gallery": None}
    restored.resume_restore(state)
    assert restored.history == evaluation.history
    assert restored.last_results == evaluation.last_results == evaluation.history[2]
